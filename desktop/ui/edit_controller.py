"""Editing a message in place: Edit (on a message, or Edit last) opens an editor inside the
message's bubble (edit_box.py); the conversation stays on screen and nothing changes in it until
the edit is sent, which makes the text a new version of that message (the old one is kept, with
its replies). Esc or Cancel close the editor and the message is shown exactly as it was;
Regenerate, a branch, another chat cancel the edit too. The message box below keeps its own
draft: a message sent from there is a new message, and an open edit stays open.

Owns only which message is being edited and its editor. Knows the transcript (which bubble shows
which message) and the run controller's hooks: the editor's Send calls `send(text)` (the run
controller's), whose `take_edit` (this `take`) turns that send into an edit; `cancel_edit` is
`cancel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QTimer, Slot

from desktop.conversation import Node
from desktop.ui.edit_box import InlineEditor
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
        self.editor: InlineEditor | None = None
        self._sending = False  # the editor's Send is under way (take() hands the message over)
        self.send: Callable[[str], bool] = lambda _text: False  # set by app.py: runs.send
        window.chat.edit_button.clicked.connect(self.edit_last)
        transcript.user_shown.connect(self._user_shown)
        transcript.bubble_removed.connect(self._bubble_removed)
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
        """Open the editor in `user`'s bubble with its text (another open edit is cancelled);
        nothing changes in the conversation until the edit is sent."""
        if self._is_busy():
            self.feedback.status("Wait for the current reply to finish, then edit.")
            return
        if self.editing is user and self.editor is not None:
            self.editor.box.setFocus()
            return
        self.cancel()
        bubble = self.transcript.widget_of(user)
        if bubble is None:
            return
        editor = InlineEditor(user.text)
        editor.submitted.connect(self._submitted)
        editor.cancelled.connect(self.cancel)
        self.editing, self.editor = user, editor
        editor.open_in(bubble)
        QTimer.singleShot(0, self._reveal)  # once the bubble's layout has made room for it

    def _reveal(self) -> None:
        """Scroll the chat column so the open editor is on screen (the edited message may be
        far above the end of a long reply)."""
        if self.editor is not None and shiboken6.isValid(self.editor):
            self.window.chat.scroll.ensureWidgetVisible(self.editor)

    @Slot(str)
    def _submitted(self, text: str) -> None:
        if not text.strip():
            self.feedback.status("An empty message cannot be sent: type one, or Esc to cancel.")
            return
        self._sending = True
        try:
            self.send(text)  # the run controller's send: take() gives it the edited message
        finally:
            self._sending = False

    def take(self) -> Node | None:
        """The message being edited when the editor's Send is what sends (the edit is over; its
        bubble is replaced by the new version's); None for a message sent from the box below."""
        if not self._sending or self.editing is None:
            return None
        user = self.editing
        self._close()
        return user

    @Slot()
    def cancel(self) -> None:
        """Close the editor; the message is shown as it was."""
        self._close()

    def _close(self) -> None:
        editor, self.editor, self.editing = self.editor, None, None
        if editor is not None and shiboken6.isValid(editor):
            editor.close_editor()

    def _bubble_removed(self, node: Node) -> None:
        """The edited message left the screen (a version switched): its editor went with it."""
        if node is self.editing:
            self.editor = self.editing = None

    @Slot(object)
    def _dropped(self, _conversation: Any) -> None:
        """Another chat is shown: the edit goes (its bubble went with the old chat)."""
        self.editor = self.editing = None
