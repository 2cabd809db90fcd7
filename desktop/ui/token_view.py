"""A read-only text view made of token spans: hover for a tooltip, click or arrow keys to select.

Owns: drawing spans (background by probability bin plus an underline style as the non-colour cue,
see theme.py), mapping a mouse position to a span, the selected span's highlight, keyboard
navigation (Left/Right/Home/End when the view has focus), the accessible text of the selected
span for screen readers, and an outline around marked spans (a token picked by the person).
Spans may be empty (a token that is only part of a UTF-8 character adds no visible text until
the token that completes it); they can still be selected.

Knows the engine's `TokenStep` and `TokenPiece` only through the helpers that build span texts.
"""

from __future__ import annotations

import bisect
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAccessible,
    QAccessibleAnnouncementEvent,
    QColor,
    QContextMenuEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import QScrollArea, QTextEdit, QToolTip, QWidget

from desktop.engine.events import TokenStep
from desktop.ui.layout import GrowsToContent


def visible_token(token: str) -> str:
    """A token's text with its invisible characters made visible (space ·, newline ↵, tab →)."""
    if token == "":
        return "∅"
    return token.replace(" ", "·").replace("\n", "↵").replace("\t", "→")


def marked_text(text: str) -> str:
    """A token's text as a token view draws it: a newline shows as ↵ before the line break it
    makes, a tab as → (in place of the wide tab). Only the drawing: copies use the real text."""
    return text.replace("\n", "↵\n").replace("\t", "→")


def bytes_label(data: bytes) -> str:
    """Raw bytes as `<F0 9F 98>`."""
    return "<" + " ".join(f"{b:02X}" for b in data) + ">"


def is_fragment(data: bytes) -> bool:
    """True when `data` is not a complete UTF-8 string (a token that is part of a character)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def token_label(token: str, data: bytes) -> str:
    """How the inspector and tooltips name a token: its bytes when it is a UTF-8 fragment."""
    return bytes_label(data) if data and is_fragment(data) else visible_token(token)


def percent(prob: float) -> str:
    if prob >= 0.995:
        return f"{prob * 100:.1f} %"
    if prob >= 0.001:
        return f"{prob * 100:.1f} %"
    return f"{prob * 100:.2g} %"


def step_tooltip(
    step: TokenStep, alternatives: int = 5, replaced: str | None = None, branchable: bool = False
) -> str:
    """Rich-text tooltip: the token, its probability and rank, and the top alternatives.
    replaced: the token this one was picked in place of (a branch from a token), named in a first
    line. branchable: add the hint that a right-click continues the reply from another token."""
    rows = []
    for alt in step.top[:alternatives]:
        mark = "▶ " if alt.id == step.id else ""
        rows.append(
            f"<tr><td>{mark}<code>{html.escape(token_label(alt.token, alt.bytes))}</code></td>"
            f"<td align='right'>{percent(alt.prob)}</td></tr>"
        )
    head = (
        f"<b><code>{html.escape(token_label(step.token, step.bytes))}</code></b> "
        f"(id {step.id})<br>p = {percent(step.prob)} · rank {step.rank + 1} · "
        f"entropy {entropy_bits(step.entropy):.2f} bits"
    )
    if replaced is not None:
        head = f"<b>Picked by you</b> in place of <code>{html.escape(replaced)}</code><br>{head}"
    hint = "<br><i>Right-click: continue from here with another token</i>" if branchable else ""
    return f"{head}<table cellspacing='4'>{''.join(rows)}</table>{hint}"


def surprisal_bits(prob: float) -> float:
    """-log2(p) in bits; infinite for p == 0."""
    return math.inf if prob <= 0.0 else -math.log2(prob)


def entropy_bits(entropy_nats: float) -> float:
    """A record's entropy (nats, natural log as its logprobs) in bits, the window's one unit of
    information, as surprisal's."""
    return entropy_nats / math.log(2.0)


@dataclass
class Span:
    start: int
    end: int
    tooltip: str
    accessible: str


def span_index(spans: Sequence[Span], position: int) -> int:
    """The index of the span holding the character at `position`, or -1. `spans` are in document
    order and do not overlap; empty ones (a token whose text shows on a later token) hold none.
    A binary search: a prompt view has thousands of spans and this runs on every mouse move."""
    index = bisect.bisect_right(spans, position, key=lambda span: span.start) - 1
    while index >= 0 and spans[index].start == spans[index].end:  # empty: share the next start
        index -= 1
    if index >= 0 and spans[index].start <= position < spans[index].end:
        return index
    return -1


class TokenSpanView(GrowsToContent, QTextEdit):
    """Read-only text built from spans; grows to its content's height (no scroll bars).

    Signals: span_activated(int) when a span is clicked or reached with the arrow keys;
    span_menu_requested(int, QPoint) on a right-click over a span (global position).
    """

    span_activated = Signal(int)
    span_menu_requested = Signal(int, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setCursor(Qt.CursorShape.PointingHandCursor)
        # a tab (in a message shown as text) is 4 spaces wide, not Qt's default 80 px
        self.setTabStopDistance(4 * self.fontMetrics().horizontalAdvance(" "))
        self.spans: list[Span] = []
        self.selected = -1
        self.marked: set[int] = set()  # spans drawn with an outline
        self.span_menus = False  # a right-click on a span asks for its menu (replies only)
        self.grow_to_content()

    # ---- building ----------------------------------------------------------------------------
    def clear_spans(self) -> None:
        self.clear()
        self.spans.clear()
        self.marked.clear()
        self.selected = -1
        self.setExtraSelections([])

    def append_span(self, text: str, fmt: QTextCharFormat, tooltip: str, accessible: str) -> int:
        """Appends one span at the end; returns its index."""
        self.append_spans([(text, fmt, tooltip, accessible)])
        return len(self.spans) - 1

    def append_spans(self, spans: Iterable[tuple[str, QTextCharFormat, str, str]]) -> None:
        """Appends (text, format, tooltip, accessible name) spans as one edit, so the document is
        laid out once rather than once per span (span by span, 2,900 tokens took 7 s here)."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        for text, fmt, tooltip, accessible in spans:
            start = cursor.position()
            if text:
                cursor.insertText(text, fmt)
            self.spans.append(Span(start, cursor.position(), tooltip, accessible))
        cursor.endEditBlock()

    def append_plain(self, text: str) -> None:
        """Appends text that belongs to no span (e.g. a separator)."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text, QTextCharFormat())

    # ---- selection ---------------------------------------------------------------------------
    def span_at(self, pos) -> int:
        """The index of the span under a viewport position, or -1."""
        cursor = self.cursorForPosition(pos)
        rect = self.cursorRect(cursor)
        position = cursor.position()
        # cursorForPosition gives the nearest boundary: pick the character on the clicked side.
        if pos.x() < rect.x() and position > 0:
            position -= 1
        return span_index(self.spans, position)

    def clear_selection(self) -> None:
        """No span highlighted (another reply's token is being inspected)."""
        self.selected = -1
        self.setExtraSelections([])

    def select_span(self, index: int, emit: bool = False) -> None:
        if not self.spans:
            return
        index = max(0, min(index, len(self.spans) - 1))
        self.selected = index
        span = self.spans[index]
        selections = []
        if span.end > span.start:
            extra = QTextEdit.ExtraSelection()
            cursor = QTextCursor(self.document())
            cursor.setPosition(span.start)
            cursor.setPosition(span.end, QTextCursor.MoveMode.KeepAnchor)
            extra.cursor = cursor
            fmt = QTextCharFormat()
            fmt.setBackground(self.palette().highlight())
            fmt.setForeground(self.palette().highlightedText())
            extra.format = fmt
            selections.append(extra)
        self.setExtraSelections(selections)
        self.setAccessibleDescription(span.accessible)
        QTimer.singleShot(0, self, lambda: self._reveal(index))  # once a switch of view is laid out
        if self.hasFocus() and QAccessible.isActive():  # said now, as the selection moves
            QAccessible.updateAccessibility(QAccessibleAnnouncementEvent(self, span.accessible))
        if emit:
            self.span_activated.emit(index)

    def _reveal(self, index: int) -> None:
        """Scroll the area this view is in (the chat column) so span `index`, still selected, is
        on screen: a token picked in the chart or reached with the arrow keys may be far below."""
        if index != self.selected or not self.isVisible() or index >= len(self.spans):
            return
        area = self.parentWidget()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parentWidget()
        if area is None or area.widget() is None:
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(self.spans[index].start)
        rect = self.cursorRect(cursor)
        centre = self.viewport().mapTo(area.widget(), rect.center())
        margin = rect.height() * 2  # a line of context above and below
        area.ensureVisible(centre.x(), centre.y(), 0, margin)

    def set_marked(self, indices: Iterable[int]) -> None:
        """Outline these spans (e.g. the token a branch picked)."""
        self.marked = set(indices)
        self.viewport().update()

    # ---- events ------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if not self.marked:
            return
        painter = QPainter(self.viewport())
        pen = QPen(self.palette().text().color())
        pen.setWidthF(1.6)
        painter.setPen(pen)
        for index in self.marked:
            if 0 <= index < len(self.spans):
                for rect in self._span_rects(self.spans[index]):
                    painter.drawRoundedRect(rect.adjusted(-1, 0, 1, 0), 3, 3)
        painter.end()

    def _span_rects(self, span: Span) -> list:
        """One viewport rectangle per line the span covers (a token may wrap)."""
        rects = []
        cursor = QTextCursor(self.document())
        start = span.start
        while start < span.end:
            cursor.setPosition(start)
            first = self.cursorRect(cursor)
            end = start + 1
            while end < span.end:
                cursor.setPosition(end)
                if self.cursorRect(cursor).top() != first.top():
                    break
                end += 1
            cursor.setPosition(end)
            last = self.cursorRect(cursor)
            right = last.left() if last.top() == first.top() else self.viewport().width()
            rects.append(first.adjusted(0, 0, right - first.left(), 0))
            start = end
        return rects

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        index = self.span_at(event.pos())
        if index >= 0 and self.span_menus:
            self.select_span(index, emit=True)
            self.span_menu_requested.emit(index, event.globalPos())
            event.accept()
            return
        super().contextMenuEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        super().mousePressEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            index = self.span_at(event.position().toPoint())
            if index >= 0:
                self.select_span(index, emit=True)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        moves = {
            Qt.Key.Key_Left: self.selected - 1,
            Qt.Key.Key_Right: self.selected + 1,
            Qt.Key.Key_Home: 0,
            Qt.Key.Key_End: len(self.spans) - 1,
        }
        if key in moves and self.spans and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            target = 0 if self.selected < 0 and key == Qt.Key.Key_Right else moves[key]
            self.select_span(target, emit=True)
            event.accept()
            return
        super().keyPressEvent(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            index = self.span_at(self.viewport().mapFromGlobal(event.globalPos()))
            if index >= 0 and self.spans[index].tooltip:
                QToolTip.showText(event.globalPos(), self.spans[index].tooltip, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)


def piece_format(index: int, special: bool, dark: bool) -> QTextCharFormat:
    """Alternating soft backgrounds so token boundaries in a user's message are visible;
    special tokens (BOS, role markers) are italic on a stronger tint."""
    fmt = QTextCharFormat()
    if special:
        fmt.setBackground(QColor("#5b4a8a" if dark else "#e4dcf7"))
        fmt.setFontItalic(True)
    else:
        # One lighter and one darker than the user bubble (#e8effc / #2a3547), so neighbouring
        # tokens stand apart (lightness differs by about 40 of 255) in both themes.
        colours = ("#1b2230", "#46566e") if dark else ("#ffffff", "#c8d4e8")
        fmt.setBackground(QColor(colours[index % 2]))
    return fmt
