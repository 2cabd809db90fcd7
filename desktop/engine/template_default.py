"""Does a chat template insert its own system prompt when the conversation has none?

Some templates do (SmolLM2's writes "You are a helpful AI assistant named SmolLM, trained by
Hugging Face" when the first message is not a system message; Qwen2.5's names Qwen), so an empty
system prompt box does not mean "no system prompt". Found by rendering the template twice, as the
model would read one user turn: without a system message, and with a marker system message. Where
the two differ, the first has the template's default and the second the marker; when the part of
the second that differs is exactly the marker, the first's part is the default.

Knows only `ChatTemplate.render`. Does not know models, Qt, or where the answer is shown (the
window's note under the system prompt box; ChatModel caches the answer per model).
"""

from __future__ import annotations

from desktop.engine.chat_template import ChatTemplate
from desktop.engine.errors import ChatTemplateError
from desktop.engine.events import Message

_USER = "Tokenglass probe: user turn."
_SYSTEM = "Tokenglass probe: system turn."


def default_system_prompt(template: ChatTemplate | None) -> str | None:
    """The system prompt `template` inserts when the messages have none, stripped; None when it
    inserts none, when there is no template, or when the template cannot render the probe (a
    template that refuses a system role folds it into the user turn: then it has no default
    system prompt of its own either). Never raises."""
    if template is None:
        return None
    try:
        without = template.render([Message("user", _USER)], add_generation_prompt=False)
        with_marker = template.render(
            [Message("system", _SYSTEM), Message("user", _USER)], add_generation_prompt=False
        )
    except ChatTemplateError:
        return None
    at = with_marker.find(_SYSTEM)
    if at < 0:
        return None
    head = _common_prefix(without, with_marker, limit=at)
    tail_limit = min(len(without) - head, len(with_marker) - (at + len(_SYSTEM)))
    tail = _common_suffix(without, with_marker, limit=tail_limit)
    if with_marker[head : len(with_marker) - tail] != _SYSTEM:
        return None  # the system turn changed more than its text: no plain default to quote
    default = without[head : len(without) - tail].strip()
    return default or None


def _common_prefix(a: str, b: str, limit: int) -> int:
    """How many leading characters `a` and `b` share, at most `limit`."""
    n = 0
    while n < min(limit, len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _common_suffix(a: str, b: str, limit: int) -> int:
    """How many trailing characters `a` and `b` share, at most `limit`."""
    n = 0
    while n < min(limit, len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n
