"""The live token count under the message box: "12 tokens · 3,950 of 4,096 left".

Owns the count of the message being typed as the model will read it (the loaded model's
tokenizer ids for the text, as `TextTokenizer.encode` gives them: no BOS, special-token text as
plain tokens, case I1) and the context left after the chat so far and that message (the chat's
last prompt plus its reply, as the status bar's "context" shows it, the template's few role
tokens for the new turn not counted). Counted after typing stops for DEBOUNCE_MS, never per key.

A huge paste stays cheap: tokenizing runs on the GUI thread (the tokenizers library holds the GIL
while it encodes, so a thread would not keep the window responsive) at 2-10 ms per 1,000
characters here (a shared machine). A text longer than CAP_CHARS is counted from its start,
CAP_CHARS characters then twice as many and so on, and counting stops once the start alone
exceeds the context (the message cannot fit anyway: "more than N tokens"): with the default
model (8,192 tokens) a
1.4-million-character paste costs what its first 40,000 characters cost (0.1-0.4 s here on a
shared, busy machine), not the seconds the whole would.
No model: the line says so. An empty box: no line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QLabel, QWidget

DEBOUNCE_MS = 250
"""Quiet time after the last edit before the message is counted."""

CAP_CHARS = 40_000
"""Characters of a longer message counted first; see the module docstring."""


def message_tokens(model: Any, text: str) -> int:
    """How many tokens the model reads for `text` as a message (no BOS, no template)."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        return len(tokenizer.encode(text))
    return len(model.tokenize(text))  # a model object without a tokenizer attribute


def count_text(model: Any, text: str, used: int) -> str:
    """The line under the box for `text` with `used` tokens of the context already taken."""
    size = int(model.context_size)
    end = CAP_CHARS
    while end < len(text):  # a long text: its start, doubled, until it alone is too long
        head = message_tokens(model, text[:end])
        if head > size:
            return f"more than {head:,} tokens · longer than the {size:,}-token context"
        end *= 2
    count = message_tokens(model, text)
    left = size - used - count
    what = f"{count:,} token" + ("" if count == 1 else "s")
    if count > size:
        return f"{what} · longer than the {size:,}-token context"
    if left < 0:
        return f"{what} · {-left:,} over the {size:,}-token context: older messages are left out"
    return f"{what} · {left:,} of {size:,} left"


class TokenCount(QObject):
    """Keeps `label` (under the message box) equal to the count of the box's text. `model()`:
    the loaded model or None. `set_used(tokens)`: the context the chat on screen takes."""

    def __init__(self, box: Any, label: QLabel, model: Callable[[], Any | None]) -> None:
        super().__init__(label)
        self.box = box
        self.label = label
        self._model = model
        self.used = 0
        self._base: str | None = None  # the box's own accessible description
        self.timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self.timer.timeout.connect(self.refresh)
        box.textChanged.connect(self.timer.start)
        self.refresh()

    @Slot(int)
    def set_used(self, tokens: int) -> None:
        self.used = max(0, int(tokens))
        self.timer.start()

    @Slot()
    def refresh(self, *_args: Any) -> None:
        """Count now (the timer's slot; also after a model is loaded)."""
        self.timer.stop()
        text = self.box.toPlainText()
        model = self._model()
        if not text:
            line = ""
        elif model is None:
            line = "Token count: no model is loaded"
        else:
            line = count_text(model, text, self.used)
        self.label.setText(line)
        self.label.setVisible(bool(line))
        self._describe(line)

    def _describe(self, line: str) -> None:
        """A screen reader hears the count with the box: its accessible description is its own
        (set once the window is built: kept from the first count) followed by the count."""
        if self._base is None:
            if not line:
                return
            self._base = self.box.accessibleDescription()
        self.box.setAccessibleDescription(f"{self._base} {line}." if line else self._base)


def count_label(parent: QWidget | None = None) -> QLabel:
    """The line under the message box (muted, small, selectable)."""
    label = QLabel("", parent)
    label.setObjectName("footer")
    label.setAccessibleName("Message length in tokens")
    label.setToolTip(
        "Your message as the model reads it, in tokens of the loaded model's tokenizer, and "
        "the context left after the chat so far and this message"
    )
    policy = label.sizePolicy()
    policy.setRetainSizeWhenHidden(True)  # its line is kept: the box does not jump as one types
    label.setSizePolicy(policy)
    label.setVisible(False)
    return label
