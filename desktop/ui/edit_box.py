"""Editing a message in its own bubble: a bar saying so, a text box holding the message, Send and
Cancel. Enter sends, Shift+Enter makes a new line, Esc (or Cancel) cancels.

A view: `InlineEditor` emits submitted(str) and cancelled(); `open_in(bubble)` puts it in a user
bubble in place of the message's text (which is only hidden, so closing the editor shows it again
exactly as it was), `close()` takes it out. Knows the user bubble's `body` and `info`, nothing
about conversations.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeyEvent, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.message_box import MessageBox

BAR_TEXT = "Editing message — Enter sends it as a new version (the old one is kept), Esc cancels"
MAX_LINES = 12  # the box grows with the text up to this many lines, then scrolls


class EditBox(MessageBox):
    """The editor's text box: Enter submits, Shift+Enter a new line, Esc cancels (taken before
    the window's Esc shortcut, which stops a reply), Tab moves the focus."""

    cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.textChanged.connect(self._fit)

    def event(self, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
        ):
            event.accept()  # Esc is this box's: it cancels the edit
            return True
        return super().event(event)

    def escape(self) -> None:
        self.cancelled.emit()

    def resizeEvent(self, event) -> None:  # a new width wraps the text anew
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        """As tall as its text (wrapped lines counted), up to MAX_LINES lines."""
        lines = 0
        block = self.document().firstBlock()
        while block.isValid():
            lines += max(1, block.layout().lineCount())
            block = block.next()
        shown = min(max(lines, 2), MAX_LINES)
        margins = self.contentsMargins().top() + self.contentsMargins().bottom()
        frame = 2 * self.frameWidth() + 2 * int(self.document().documentMargin())
        self.setFixedHeight(shown * self.fontMetrics().lineSpacing() + margins + frame)


class InlineEditor(QFrame):
    """Signals: submitted(str) with the box's text, cancelled()."""

    submitted = Signal(str)
    cancelled = Signal()

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inlineEditor")
        self.bar = QLabel(BAR_TEXT)
        self.bar.setObjectName("reading")
        self.bar.setWordWrap(True)
        self.box = EditBox()
        self.box.setObjectName("input")
        self.box.setAccessibleName("Edit message")
        self.box.setAccessibleDescription(BAR_TEXT)
        self.box.setPlainText(text)
        self.send_button = QPushButton("Send")
        self.send_button.setToolTip("Send the edited message as a new version (Enter)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Leave the message as it was (Esc)")
        self.box.submitted.connect(self._submit)
        self.send_button.clicked.connect(self._submit)
        self.box.cancelled.connect(self.cancelled)
        self.cancel_button.clicked.connect(self.cancelled)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.send_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 4, 0, 0)
        column.addWidget(self.bar)
        column.addWidget(self.box)
        column.addLayout(buttons)
        self._bubble: QWidget | None = None
        self._was: tuple[bool, bool, bool] = (True, True, True)  # body, info shown; Edit enabled

    def _submit(self) -> None:
        self.submitted.emit(self.box.toPlainText())

    def open_in(self, bubble: QWidget) -> None:
        """Show the editor in user bubble `bubble` in place of its text, the caret at the end
        and the keyboard focus in the box."""
        self._bubble = bubble
        layout = bubble.layout()
        layout.insertWidget(layout.indexOf(bubble.body) + 1, self)
        self._was = (
            bubble.body.isVisibleTo(bubble),
            bubble.info.isVisibleTo(bubble),
            bubble.edit_button.isEnabled(),
        )
        bubble.body.setVisible(False)
        bubble.info.setVisible(False)
        bubble.edit_button.setEnabled(False)
        # Tab goes on from the message's text (hidden, keeping its place) to the box, Cancel,
        # Send, then to what followed the text; not to the end of the window's focus chain,
        # where Qt puts a widget added after the window's focus order was set.
        QWidget.setTabOrder(bubble.body, self.box)
        QWidget.setTabOrder(self.box, self.cancel_button)
        QWidget.setTabOrder(self.cancel_button, self.send_button)
        self.box.moveCursor(QTextCursor.MoveOperation.End)
        self.box.setFocus(Qt.FocusReason.OtherFocusReason)

    def close_editor(self) -> None:
        """Take the editor out; the bubble shows its message again, as it was."""
        bubble, self._bubble = self._bubble, None
        if bubble is not None:
            bubble.layout().removeWidget(self)
            body, info, edit = self._was
            bubble.body.setVisible(body)
            bubble.info.setVisible(info)
            bubble.edit_button.setEnabled(edit)
            bubble.body.setFocus(Qt.FocusReason.OtherFocusReason)
        self.deleteLater()
