"""The dates task's data: a date written in one of eight forms, and its ISO 8601 answer.

Forms (for 2021-03-03, a Wednesday), words in random case (lower, UPPER or Title, per word):

    "3 March 2021"             "March 3, 2021"          "3rd of March 2021"
    "Mar 3 2021"  (three-letter month, or "Sept")      "Wednesday, 3 March 2021" (or "Wed, ...")
    "2021/3/3"    (year/month/day)                      "3.3.2021" (day.month.year)
    "03/03/2021"  (month/day/year, as in the US)

In the three numeric forms the day and the month are zero-padded or not, each at random. Dates run
from 1900-01-01 to 2099-12-31 (73,049 days). Held-out dates are drawn first, by seed, and the
training sampler never returns them, in any form. Pure Python: no torch, no tokenizer.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

FIRST = dt.date(1900, 1, 1)
LAST = dt.date(2099, 12, 31)
DAYS = (LAST - FIRST).days + 1  # 73,049
MONTHS = [dt.date(2001, m, 1).strftime("%B") for m in range(1, 13)]  # "January" ...
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def ordinal(day: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 22 -> "22nd"."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _month_abbr(month: int, rng: random.Random) -> str:
    name = MONTHS[month - 1]
    return "Sept" if month == 9 and rng.random() < 0.5 else name[:3]


def _num(value: int, rng: random.Random) -> str:
    """A day or month in a numeric form: "3" or "03"."""
    return f"{value:02d}" if rng.random() < 0.5 else str(value)


def _weekday(date: dt.date, rng: random.Random) -> str:
    name = WEEKDAYS[date.weekday()]
    return name if rng.random() < 0.5 else name[:3]


# Each form: (date, rng) -> text with words in Title case; random case is applied after.
FORMS: dict[str, Callable[[dt.date, random.Random], str]] = {
    "day month year": lambda d, r: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    "month day, year": lambda d, r: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "ordinal of month year": lambda d, r: f"{ordinal(d.day)} of {MONTHS[d.month - 1]} {d.year}",
    "abbreviated month day year": lambda d, r: f"{_month_abbr(d.month, r)} {d.day} {d.year}",
    "weekday, day month year": (
        lambda d, r: f"{_weekday(d, r)}, {d.day} {MONTHS[d.month - 1]} {d.year}"
    ),
    "year/month/day": lambda d, r: f"{d.year}/{_num(d.month, r)}/{_num(d.day, r)}",
    "day.month.year": lambda d, r: f"{_num(d.day, r)}.{_num(d.month, r)}.{d.year}",
    "month/day/year (US)": lambda d, r: f"{_num(d.month, r)}/{_num(d.day, r)}/{d.year}",
}


def random_case(text: str, rng: random.Random) -> str:
    """Each word (a run of letters) lower, UPPER or as written (Title), chosen at random."""
    words = text.split(" ")
    styled = []
    for word in words:
        style = rng.randrange(3)
        styled.append(word.lower() if style == 0 else word.upper() if style == 1 else word)
    return " ".join(styled)


def render(date: dt.date, rng: random.Random, form: str | None = None) -> str:
    """`date` written in `form` (a key of FORMS; a random one when None), words in random case."""
    chosen = form if form is not None else rng.choice(list(FORMS))
    return random_case(FORMS[chosen](date, rng), rng)


def date_at(index: int) -> dt.date:
    """The `index`-th day from 1900-01-01 (0 .. DAYS-1)."""
    return FIRST + dt.timedelta(days=index)


def heldout_days(seed: int, count: int) -> list[int]:
    """`count` distinct day indices, fixed by `seed`, in the order drawn."""
    return random.Random(f"dates-heldout-{seed}").sample(range(DAYS), count)


def heldout_examples(seed: int, count: int) -> list[tuple[str, str]]:
    """`count` (text, ISO answer) pairs, one per held-out date, each in a seeded random form."""
    rng = random.Random(f"dates-heldout-text-{seed}")
    days = heldout_days(seed, count)
    return [(render(date_at(i), rng), date_at(i).isoformat()) for i in days]


def training_sampler(seed: int, heldout: int) -> Callable[[random.Random], tuple[str, str]]:
    """A function rng -> (text, ISO answer) over the dates that are not held out."""
    excluded = set(heldout_days(seed, heldout))
    allowed = [i for i in range(DAYS) if i not in excluded]

    def sample(rng: random.Random) -> tuple[str, str]:
        date = date_at(rng.choice(allowed))
        return render(date, rng), date.isoformat()

    return sample
