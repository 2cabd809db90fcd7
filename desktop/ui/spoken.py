"""Words for screen readers: how a token, a probability and the probability scale's cues are said
aloud. Text only; the views put it in accessible names, descriptions and announcements.

A screen reader skips whitespace and, at its default punctuation level, most punctuation, so a
token's text is spelled out: whitespace by name ("space", "2 newlines", "tab"), a token of only
punctuation or symbols by its characters' Unicode names ("comma", "grinning face"), a fragment of
a UTF-8 character by its bytes. A probability is said as the inspector shows it, with "percent"
for "%". An underline style is said as a person sees it ("dotted underline"), never by its Qt
enum name ("DotLine").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from PySide6.QtGui import QTextCharFormat

from desktop.engine.events import Alternative, TokenStep
from desktop.ui import theme
from desktop.ui.token_view import is_fragment, percent

ALTERNATIVES_SAID = 3
"""Alternatives a token's accessible text names (the inspector lists them all)."""

_WHITESPACE = {
    " ": ("space", "spaces"),
    "\n": ("newline", "newlines"),
    "\t": ("tab", "tabs"),
    "\r": ("carriage return", "carriage returns"),
}
_RUNS = re.compile(r" +|\n+|\t+|\r+|[^ \n\t\r]+")
_SPELLED_UP_TO = 4  # a longer run of symbols is read as it is (a screen reader copes with "----")

_UNDERLINES = {
    QTextCharFormat.UnderlineStyle.NoUnderline: "no underline",
    QTextCharFormat.UnderlineStyle.SingleUnderline: "solid underline",
    QTextCharFormat.UnderlineStyle.DotLine: "dotted underline",
    QTextCharFormat.UnderlineStyle.DashUnderline: "dashed underline",
    QTextCharFormat.UnderlineStyle.WaveUnderline: "wavy underline",
}


def spoken_percent(prob: float) -> str:
    """A probability in [0, 1] as the inspector shows it, said aloud: "87.0 percent"."""
    return percent(prob).replace(" %", " percent")


def _spoken_run(run: str) -> str:
    names = _WHITESPACE.get(run[0])
    if names is not None:
        return names[0] if len(run) == 1 else f"{len(run)} {names[1]}"
    if any(ch.isalnum() for ch in run) or len(run) > _SPELLED_UP_TO:
        return run
    return " ".join(unicodedata.name(ch, f"character {ord(ch):04X}").lower() for ch in run)


def spoken_token(token: str, data: bytes = b"") -> str:
    """A token's text as a screen reader should say it: " Paris" -> "space Paris", "\\n\\n" ->
    "2 newlines", "," -> "comma", "" -> "empty"; a fragment of a UTF-8 character (its `data`
    is not valid UTF-8 alone) -> "part of a character, bytes F0 9F"."""
    if data and is_fragment(data):
        return "part of a character, bytes " + " ".join(f"{b:02X}" for b in data)
    if token == "":
        return "empty"
    return " ".join(_spoken_run(match.group()) for match in _RUNS.finditer(token))


def alternatives_text(step: TokenStep, count: int = ALTERNATIVES_SAID) -> str:
    """The `count` most likely other tokens of a step, said aloud: "space Lyon 4.0 percent, ..."
    ("" when the record has none)."""
    others: Sequence[Alternative] = [alt for alt in step.top if alt.id != step.id][:count]
    return ", ".join(f"{spoken_token(a.token, a.bytes)} {spoken_percent(a.prob)}" for a in others)


def step_text(step: TokenStep) -> str:
    """What a screen reader says for a token of a reply: its position, text, probability (as the
    inspector shows it), rank and the top alternatives, e.g. "token 3: space Paris, 87.0 percent,
    rank 1; alternatives: space Lyon 4.0 percent, space Marseille 2.1 percent"."""
    text = (
        f"token {step.index + 1}: {spoken_token(step.token, step.bytes)}, "
        f"{spoken_percent(step.prob)}, rank {step.rank + 1}"
    )
    others = alternatives_text(step)
    return f"{text}; alternatives: {others}" if others else text


def piece_text(index: int, token: str, data: bytes, token_id: int, special: bool) -> str:
    """What a screen reader says for a token of your message or of the prompt:
    "token 2: space world, id 1917" (", special token" for a role marker or BOS)."""
    text = f"token {index + 1}: {spoken_token(token, data)}, id {token_id}"
    return text + (", special token" if special else "")


def underline_words(style: QTextCharFormat.UnderlineStyle) -> str:
    """An underline style as a person names it ("dotted underline")."""
    return _UNDERLINES.get(style, "underline")


def scale_text() -> str:
    """The probability scale (theme.PROBABILITY_SCALE) said aloud, most likely band first:
    "...: 90 percent or more, no underline; ...; under 5 percent, wavy underline"."""
    bands, high = [], None
    for band in theme.PROBABILITY_SCALE:
        low = round(band.low * 100)
        if high is None:
            words = f"{low} percent or more"
        elif low == 0:
            words = f"under {high} percent"
        else:
            words = f"{low} to {high} percent"
        bands.append(f"{words}, {underline_words(band.underline)}")
        high = low
    return "Token background and underline show probability: " + "; ".join(bands)
