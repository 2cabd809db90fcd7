"""The keys every box a message is written in shares: Enter submits, Shift+Enter makes a new line,
Esc calls `escape` (the message box stops a reply, an edit box cancels the edit), Tab and
Shift+Tab move the focus (a keyboard user can leave the box; a tab character can still be pasted).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget


class MessageBox(QPlainTextEdit):
    """Emits submitted() on Enter; subclasses say what Esc does in `escape`."""

    submitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)

    def escape(self) -> None:
        """What Esc does in this box (nothing here)."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escape()
            event.accept()
            return
        super().keyPressEvent(event)
