"""Which conversation the window shows: a `Conversation` (desktop/conversation.py) that New chat
and opening a saved chat replace.

Owns only that pointer. The conversation itself (its tree, its records) lives in the Qt-free
core; views render it and controllers change it. A run keeps writing into the conversation it
started in, also after the window has moved on to another one.
Signal: replaced(Conversation) after the window's conversation was swapped for another.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from desktop.conversation import Conversation


class ChatSession(QObject):
    replaced = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.conversation = Conversation()

    @property
    def conversation_id(self) -> int | None:
        """The history's id of the conversation on screen (None until it is first saved)."""
        return self.conversation.id

    def replace(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.replaced.emit(conversation)
