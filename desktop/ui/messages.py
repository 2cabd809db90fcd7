"""The chat column: message bubbles (user and assistant), the error banner and the input box.

Views only: a bubble draws what it is handed and owns no conversation data. A user bubble shows
the message as text, as its tokens (ids on hover), or as the whole prompt the model read; which
pieces to show is handed in by a controller. An assistant bubble draws a reply's token records
(the reply's own list, drawn as it grows) as spans coloured by probability, shows "reading your
message" before the first token, and keeps a footer (tokens, TTFT, tokens/s, provider) after the
reply ends. A message with other versions shows "‹ 2/3 ›"; Alt+Left / Alt+Right anywhere in the
bubble ask for the previous / next version.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.events import GenerationDone, TokenStep
from desktop.history_export import size_and_speed
from desktop.ui import theme
from desktop.ui.flow_layout import WrappingRow
from desktop.ui.message_box import MessageBox
from desktop.ui.reply_text import ReplyModeButtons, ReplyTextView
from desktop.ui.spoken import piece_text, step_text
from desktop.ui.token_count import count_label
from desktop.ui.token_view import (
    TokenSpanView,
    bytes_label,
    marked_text,
    percent,
    piece_format,
    step_tooltip,
    token_label,
    visible_token,
)

MAX_PIECES = 20_000
"""Tokens drawn in a message's Tokens or Prompt view at most (a bound for pasted books)."""

MESSAGE_BOX_MIN_WIDTH = 220
"""The message box's narrowest width (px): about 30 characters a line. With its buttons it sets
the chat column's minimum width, which the window keeps by hiding side panels (panel_fit.py)."""


def _tool(text: str, tip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.setAccessibleName(tip)
    button.setAutoRaise(True)
    return button


class VersionSwitcher(QWidget):
    """ "‹ 2/3 ›": the versions of one message. Hidden when there is one. Signal:
    switch_requested(int) with -1 (previous) or +1 (next)."""

    switch_requested = Signal(int)

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.what = what
        self.previous = _tool("‹", f"Previous version of this {what} (Alt+Left)")
        self.next = _tool("›", f"Next version of this {what} (Alt+Right)")
        self.label = QLabel("1/1")
        self.label.setObjectName("muted")
        self.previous.clicked.connect(lambda: self.switch_requested.emit(-1))
        self.next.clicked.connect(lambda: self.switch_requested.emit(1))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.previous)
        row.addWidget(self.label)
        row.addWidget(self.next)
        self.set_version(1, 1)

    def set_version(self, position: int, count: int) -> None:
        """position: 1-based, of `count` versions."""
        self.label.setText(f"{position}/{count}")
        self.label.setAccessibleName(f"version {position} of {count}")
        self.previous.setEnabled(position > 1)
        self.next.setEnabled(position < count)
        self.setVisible(count > 1)


def _version_keys(bubble: QWidget, versions: VersionSwitcher) -> None:
    """Alt+Left / Alt+Right while the focus is anywhere in `bubble` switch its versions."""
    for key, delta in (("Alt+Left", -1), ("Alt+Right", 1)):
        shortcut = QShortcut(QKeySequence(key), bubble)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(lambda d=delta: versions.switch_requested.emit(d))


class UserMessageWidget(QFrame):
    """Signals: view_mode_changed(str) with "text" | "tokens" | "prompt"; copy_requested;
    edit_requested; versions.switch_requested(int)."""

    view_mode_changed = Signal(str)
    copy_requested = Signal()
    edit_requested = Signal()

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("userBubble")
        self.text = text
        self.mode = "text"
        who = QLabel("You")
        who.setObjectName("role")
        self.modes = QButtonGroup(self)
        header = WrappingRow()  # the buttons wrap under "You" in a narrow column, never cut off
        row = header.flow
        row.addWidget(who)
        row.addStretch(1)
        self.mode_buttons: dict[str, QToolButton] = {}
        for mode, label, tip in (
            ("text", "Text", "Show the message as text"),
            ("tokens", "Tokens", "Show the message as its tokens (ids on hover)"),
            ("prompt", "Prompt", "Show the whole prompt the model read (chat template included)"),
        ):
            button = _tool(label, tip)
            button.setCheckable(True)
            button.setChecked(mode == "text")
            self.modes.addButton(button)
            self.mode_buttons[mode] = button
            button.clicked.connect(self._mode_clicked)
            row.addWidget(button)
        self.mode_buttons["prompt"].setEnabled(False)
        self.versions = VersionSwitcher("message")
        row.insertWidget(1, self.versions)
        _version_keys(self, self.versions)
        self.edit_button = _tool("Edit", "Edit this message and send it as a new version")
        self.edit_button.clicked.connect(self.edit_requested)
        self.copy_button = _tool("Copy", "Copy this message")
        self.copy_button.clicked.connect(self.copy_requested)
        row.addWidget(self.edit_button)
        row.addWidget(self.copy_button)
        self.body = TokenSpanView()
        self.body.setAccessibleName("Your message")
        self.info = QLabel("")
        self.info.setObjectName("footer")
        self.info.setWordWrap(True)
        column = QVBoxLayout(self)
        column.setContentsMargins(10, 6, 10, 8)
        column.addWidget(header)
        column.addWidget(self.body)
        column.addWidget(self.info)
        self.show_text()

    def _mode_clicked(self) -> None:
        for mode, button in self.mode_buttons.items():
            if button is self.sender():
                self.view_mode_changed.emit(mode)

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        self.mode_buttons[mode].setChecked(True)

    def show_text(self) -> None:
        self._set_mode("text")
        self.body.clear_spans()
        self.body.append_span(self.text, self.body.currentCharFormat(), "", self.text)
        self.info.setText("")
        self.info.setVisible(False)  # an empty line would pad the bubble

    def show_pieces(self, pieces: Sequence, mode: str, note: str = "") -> None:
        """pieces: objects with id, token, bytes, special and a display `text` attribute or the
        token itself. Shown as alternating spans; special tokens in italics. At most MAX_PIECES
        are drawn (the count says how many there are)."""
        self._set_mode(mode)
        dark = theme.app_is_dark()
        self.body.clear_spans()
        shown_pieces = pieces[:MAX_PIECES]
        self.body.append_spans(
            (
                # A piece's display text may be "" (part of a character shown on a later token).
                marked_text(piece.display if hasattr(piece, "display") else piece.token),
                piece_format(index, piece.special, dark),
                f"<b><code>{html.escape(visible_token(piece.token))}</code></b><br>id {piece.id}"
                + (" · special token" if piece.special else "")
                + f"<br>bytes {html.escape(bytes_label(piece.bytes))}",
                piece_text(index, piece.token, piece.bytes, piece.id, piece.special),
            )
            for index, piece in enumerate(shown_pieces)
        )
        count = f"{len(pieces):,} token" + ("" if len(pieces) == 1 else "s")
        if len(pieces) > MAX_PIECES:
            self.body.append_plain(f" … ({len(pieces) - MAX_PIECES:,} more not drawn)")
            count += f"; the first {MAX_PIECES:,} are drawn"
        self.info.setText(note or count)
        self.info.setVisible(True)

    def enable_prompt(self, on: bool) -> None:
        self.mode_buttons["prompt"].setEnabled(on)


class AssistantMessageWidget(QFrame):
    """Signals: token_selected(int) (click or arrow keys), copy_requested, regenerate_requested,
    branch_requested(int, int) (token index, the alternative's id: "Continue from here with this
    token", from the right-click menu of a token), versions.switch_requested(int).
    `mode`: "tokens" (the default) or "text" (the reply rendered as Markdown, reply_text.py)."""

    token_selected = Signal(int)
    copy_requested = Signal()
    regenerate_requested = Signal()
    branch_requested = Signal(int, int)

    def __init__(self, model_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assistantBubble")
        self._steps: Sequence[TokenStep] = ()  # the reply's own records, drawn up to _drawn
        self._drawn = 0
        self._branch: tuple[int, str] | None = None  # (picked index, the token it replaced)
        self.done: GenerationDone | None = None
        self.mode = "tokens"
        # (prob, dark) -> a token's format; "Show surprisal" swaps it (reading_controller.py)
        self.token_format = theme.token_format
        self._dropped = 0  # oldest messages left out, for the reading line
        who = QLabel("Assistant")
        who.setObjectName("role")
        self.model_label = QLabel(model_name)
        self.model_label.setObjectName("muted")
        self.regenerate_button = _tool("Regenerate", "Generate this reply again")
        self.regenerate_button.clicked.connect(self.regenerate_requested)
        self.copy_button = _tool("Copy", "Copy this reply")
        self.copy_button.clicked.connect(self.copy_requested)
        header = WrappingRow()  # the buttons wrap under the name in a narrow column
        row = header.flow
        row.addWidget(who)
        row.addWidget(self.model_label)
        row.addStretch(1)
        self.view_buttons = ReplyModeButtons()
        self.view_buttons.mode_changed.connect(self.show_mode)
        row.addWidget(self.view_buttons)
        self.versions = VersionSwitcher("reply")
        row.addWidget(self.versions)
        row.addWidget(self.regenerate_button)
        row.addWidget(self.copy_button)
        _version_keys(self, self.versions)
        self.reading = QLabel("Reading your message…")
        self.reading.setObjectName("reading")
        self.reading.setWordWrap(True)  # else its one line sets the chat column's minimum width
        self.body = TokenSpanView()
        self.body.setAccessibleName("Assistant reply; use the arrow keys to move between tokens")
        self.body.span_activated.connect(self.token_selected)
        self.body.span_menus = True
        self.body.span_menu_requested.connect(self._token_menu)
        self.body.setVisible(False)
        self.rendered = ReplyTextView()
        self.rendered.setVisible(False)
        self.footer = QLabel("")
        self.footer.setObjectName("footer")
        self.footer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.footer.setWordWrap(True)  # else its one line sets the chat column's minimum width
        self.footer.setVisible(False)  # until the reply ends (an empty line under a streaming one)
        self.error = QLabel("")
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        column = QVBoxLayout(self)
        column.setContentsMargins(10, 6, 10, 8)
        column.addWidget(header)
        column.addWidget(self.reading)
        column.addWidget(self.body)
        column.addWidget(self.rendered)
        column.addWidget(self.error)
        column.addWidget(self.footer)
        self.set_busy(True)

    @property
    def steps(self) -> list[TokenStep]:
        """The records drawn so far (read from the reply; the bubble keeps no copy)."""
        return list(self._steps[: self._drawn])

    @property
    def text(self) -> str:
        return "".join(step.text for step in self._steps[: self._drawn])

    def set_busy(self, busy: bool) -> None:
        self.regenerate_button.setEnabled(not busy)
        self.copy_button.setEnabled(not busy)

    def set_reading(self, prompt_tokens: int, dropped: int = 0) -> None:
        text = f"Reading your message… ({prompt_tokens} prompt tokens)"
        self._dropped = dropped
        if dropped:
            text += f" · {dropped} oldest messages left out to fit the context window"
        self.reading.setText(text)

    def set_progress(self, done: int, total: int, reused: int = 0) -> None:
        """The prefill has run `done` of the `total` prompt tokens it runs (`reused` more came
        from the previous turn's cache): "Reading your message… 120 / 900 tokens"."""
        text = f"Reading your message… {done:,} / {total:,} tokens"
        if reused:
            text += f" ({reused:,} more kept from before)"
        if self._dropped:
            text += f" · {self._dropped} oldest messages left out to fit the context window"
        self.reading.setText(text)

    def show_mode(self, mode: str) -> None:
        """Show the reply as "tokens" (coloured spans) or "text" (rendered Markdown)."""
        self.mode = mode
        self.view_buttons.set_mode(mode)
        self._show_reply()

    def _show_reply(self) -> None:
        """The view of `mode` when the reply has text to show, else neither."""
        text = self.mode == "text"
        if text and self._drawn and self.done is None:  # streaming: one render per interval
            self.rendered.show_soon(self.text)
        elif text and self._drawn:
            self.rendered.set_reply_text(self.text)
        self.body.setVisible(self._drawn > 0 and not text)
        self.rendered.setVisible(self._drawn > 0 and text)

    def set_branch(self, index: int, replaced: str) -> None:
        """This reply was branched at token `index`, picked in place of `replaced` (its label):
        that token is outlined and its tooltip says what it replaced."""
        self._branch = (index, replaced)

    def show_steps(self, steps: Sequence[TokenStep]) -> None:
        """Draws the records of `steps` not drawn yet, as one edit of the text: the whole reply
        from history, or the tokens streamed since the last call (`steps` is the reply's own
        list, kept by reference)."""
        self._steps = steps
        new = steps[self._drawn :]
        if not new:
            return
        if self._drawn == 0:
            self.reading.setVisible(False)
        dark = theme.app_is_dark()
        first = self._drawn
        self._drawn = len(steps)
        spans = []
        for offset, step in enumerate(new):
            replaced = self._replaced_at(first + offset, step)
            spans.append(
                (
                    marked_text(step.text),
                    self.token_format(step.prob, dark),
                    step_tooltip(step, replaced=replaced, branchable=True),
                    step_text(step) + (", picked by you" if replaced is not None else ""),
                )
            )
        self.body.append_spans(spans)
        marked = [i for i in range(first, self._drawn) if self._replaced_at(i, steps[i])]
        if marked:
            self.body.set_marked(self.body.marked | set(marked))
        self._show_reply()

    def _replaced_at(self, index: int, step: TokenStep) -> str | None:
        """The token `step` was picked in place of; None for a token the model chose."""
        if self._branch is not None and self._branch[0] == index:
            return self._branch[1]
        if getattr(step, "picked", False):  # a stored branch whose original is not known here
            return "the model's own choice"
        return None

    def token_menu(self, index: int) -> QMenu | None:
        """The right-click menu of token `index`: "Continue from here with “…”" for each of its
        alternatives (each emits branch_requested); None while the reply is being written."""
        if not 0 <= index < self._drawn or not self.regenerate_button.isEnabled():
            return None
        step = self._steps[index]
        menu = QMenu(self)
        for alt in step.top:
            if alt.id == step.id:
                continue
            label = f"Continue from here with “{token_label(alt.token, alt.bytes)}”"
            action = menu.addAction(f"{label} ({percent(alt.prob)})")
            action.triggered.connect(
                lambda _checked=False, i=index, t=alt.id: self.branch_requested.emit(i, t)
            )
        return None if menu.isEmpty() else menu

    def _token_menu(self, index: int, pos: QPoint) -> None:
        menu = self.token_menu(index)
        if menu is not None:
            menu.exec(pos)
            menu.deleteLater()

    def finish(self, done: GenerationDone, partial: bool = False) -> None:
        self.done = done
        self.reading.setVisible(False)
        self._show_reply()
        if done.error:
            self.show_error(done.error)
        self.footer.setText(footer_text(done, partial))
        self.footer.setVisible(bool(self.footer.text()))
        self.set_busy(False)

    def show_error(self, message: str) -> None:
        self.reading.setVisible(False)
        self.error.setText(message)
        self.error.setVisible(True)
        self.set_busy(False)


def footer_text(done: GenerationDone, partial: bool = False) -> str:
    """ "42 tokens · TTFT 180 ms · 31.2 tokens/s · CPUExecutionProvider · seed 7" (no seed when
    the reply was greedy: temperature 0 draws nothing at random)."""
    provider = done.provider or "provider unknown"
    if done.completion_tokens == 0 and (done.finish_reason == "cancelled" or partial):
        return f"stopped before the first token · {provider}"
    parts = [*size_and_speed(done), provider]
    if done.seed_used is not None:  # greedy replies use no seed
        parts.append(f"seed {done.seed_used}")
    if done.finish_reason == "cancelled" or partial:
        parts.append("stopped")
    elif done.finish_reason == "length":
        parts.append("max new tokens reached")
    return " · ".join(parts)


class InputBox(MessageBox):
    """The message box: Enter sends, Shift+Enter makes a new line, Esc stops, Tab and Shift+Tab
    move the focus (see MessageBox)."""

    stop_requested = Signal()

    def escape(self) -> None:
        self.stop_requested.emit()


class ChatView(QWidget):
    """The centre: a scrolling column of bubbles above the input row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.column_widget = QWidget()
        self.column_widget.setObjectName("chatColumn")
        self.column = QVBoxLayout(self.column_widget)
        self.column.setContentsMargins(16, 12, 16, 12)
        self.column.setSpacing(10)
        self.empty = QLabel(
            "Ask the model something. Each token of its reply is coloured by how likely the model "
            "found it; click one to see the alternatives it weighed."
        )
        self.empty.setObjectName("empty")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.column.addWidget(self.empty)
        self.column.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        # Bubbles wrap to the viewport's width; a sideways scroll bar would hide their buttons.
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.column_widget)
        self.scroll.verticalScrollBar().rangeChanged.connect(self._follow)
        self._stick = True
        self.scroll.verticalScrollBar().valueChanged.connect(self._track)

        self.input = InputBox()
        self.input.setObjectName("input")
        self.input.setPlaceholderText(
            "Message the model (Enter sends, Shift+Enter new line, Esc stops)"
        )
        self.input.setAccessibleName("Message")
        self.input.setFixedHeight(76)
        self.input.setMinimumWidth(MESSAGE_BOX_MIN_WIDTH)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("send")
        self.send_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stop")
        self.stop_button.setVisible(False)
        self.regenerate_button = QPushButton("Regenerate")
        self.edit_button = QPushButton("Edit last")
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        small = QHBoxLayout()
        small.addWidget(self.regenerate_button)
        small.addWidget(self.edit_button)
        buttons.addLayout(small)
        self.count_label = count_label()  # "12 tokens · 3,950 of 4,096 left" (token_count.py)
        box = QVBoxLayout()
        box.setSpacing(2)
        box.addWidget(self.input)
        box.addWidget(self.count_label)
        row = QHBoxLayout()
        row.setContentsMargins(16, 6, 16, 12)
        row.addLayout(box, 1)
        row.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.scroll, 1)
        layout.addLayout(row)

    def add_bubble(self, widget: QWidget) -> None:
        self.empty.setVisible(False)
        widget.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.column.insertWidget(self.column.count() - 1, widget)
        widget.show()  # now, not on the layout's queued show (a re-rendered turn is at once there)
        self._stick = True

    def remove_bubble(self, widget: QWidget) -> None:
        self.column.removeWidget(widget)
        widget.deleteLater()

    def clear_bubbles(self) -> None:
        for index in reversed(range(self.column.count())):
            widget = self.column.itemAt(index).widget()
            if widget is not None and widget is not self.empty:
                self.remove_bubble(widget)
        self.empty.setVisible(True)

    def set_busy(self, busy: bool) -> None:
        self.send_button.setVisible(not busy)
        self.stop_button.setVisible(busy)
        self.stop_button.setText("Stop")
        self.stop_button.setEnabled(True)
        self.regenerate_button.setEnabled(not busy)
        self.edit_button.setEnabled(not busy)

    def show_stopping(self) -> None:
        """Stop was heard: the model stops after its current step or prefill chunk."""
        self.stop_button.setText("Stopping…")
        self.stop_button.setEnabled(False)

    def _track(self, value: int) -> None:
        bar = self.scroll.verticalScrollBar()
        self._stick = value >= bar.maximum() - 4

    def _follow(self, _low: int, high: int) -> None:
        if self._stick:
            self.scroll.verticalScrollBar().setValue(high)


class ErrorBanner(QLabel):
    """A clear message in the chat column (model failed to load, provider missing, ...)."""

    def __init__(self, message: str, parent: QWidget | None = None) -> None:
        super().__init__(message, parent)
        self.setObjectName("error")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setAccessibleName("Error")


class NoticeBanner(QLabel):
    """A note in the chat column that is not an error (e.g. the default model was opened
    because the last-used one is gone)."""

    def __init__(self, message: str, parent: QWidget | None = None) -> None:
        super().__init__(message, parent)
        self.setObjectName("reading")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setAccessibleName("Notice")
