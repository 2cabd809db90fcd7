"""Editing a message: the message goes back into the input box and is hidden with everything
after it; sending makes the text a new version of that message (the old one is kept, with its
replies); emptying the box, Regenerate, or another chat cancel the edit.

Owns only which message is being edited. Knows the input box, the transcript (to hide and show
bubbles) and the run controller's hooks (`take_edit`, `cancel_edit`) through which a send
becomes an edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QTextCursor

from desktop.conversation import Node
from desktop.ui.feedback import Feedback
from desktop.ui.main_window import MainWindow
from desktop.ui.session import ChatSession
from desktop.ui.transcript import TranscriptController


class EditController(QObject):
    def __init__(
        self,
        window: MainWindow,
        session: ChatSession,
        transcript: TranscriptController,
        feedback: Feedback,
        is_busy: Callable[[], bool],
    ) -> None:
        super().__init__(window)
        self.window = window
        self.transcript = transcript
        self.feedback = feedback
        self._is_busy = is_busy
        self.editing: Node | None = None
        window.chat.edit_button.clicked.connect(self.edit_last)
        window.chat.input.textChanged.connect(self._input_changed)
        transcript.user_shown.connect(self._user_shown)
        session.replaced.connect(self._dropped)

    def _user_shown(self, node: Node, widget: Any) -> None:
        widget.edit_requested.connect(lambda n=node: self.edit(n))

    @Slot()
    def edit_last(self) -> None:
        """Edit the last message you sent."""
        users = [row.node for row in self.transcript.rows if row.role == "user"]
        if users:
            self.edit(users[-1])

    def edit(self, user: Node) -> None:
        """Put `user`'s text in the input box and hide it and what follows; nothing changes in
        the conversation until the edit is sent."""
        if self._is_busy() or self.editing is not None:
            return
        self.editing = user
        self.transcript.hide_from(user)
        box = self.window.chat.input
        box.setPlainText(user.text)
        box.moveCursor(QTextCursor.MoveOperation.End)
        box.setFocus()
        self.feedback.status(
            "Editing your message: sending makes a new version of it (the old one is kept); "
            "empty the box to cancel.",
            10000,
        )

    def take(self) -> Node | None:
        """The message being edited, as a send takes it (the edit is over; None when none)."""
        user, self.editing = self.editing, None
        if user is not None:
            self.feedback.clear_status()  # the editing hint is done with
            self.transcript.hide_from(None, render=False)  # the new version renders next
        return user

    def cancel(self) -> None:
        """The hidden messages come back, and the box no longer holds the edit."""
        if self.editing is None:
            return
        self.editing = None
        self.feedback.clear_status()
        self.window.chat.input.clear()
        self.transcript.hide_from(None)

    @Slot()
    def _input_changed(self) -> None:
        """An edit whose text was emptied is cancelled."""
        if self.editing is not None and not self.window.chat.input.toPlainText().strip():
            self.cancel()

    @Slot(object)
    def _dropped(self, _conversation: Any) -> None:
        """Another chat is shown: the edit (and its text) go."""
        if self.editing is not None:
            self.editing = None
            self.window.chat.input.clear()
