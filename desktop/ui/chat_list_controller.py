"""The chat list and persistence: New chat, opening, renaming, deleting and searching saved
chats, and saving the conversation as it changes.

Owns every call the window makes to its storage, all through one `ChatStore` (store.py: a
`TreeStore` over the history's message tree), so this module knows no storage. A storage error
becomes a message in the window; the app stays usable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Slot

from desktop.conversation import Conversation, Node
from desktop.engine.errors import EngineError
from desktop.ui.chat_menu import chat_tooltip
from desktop.ui.chat_title import followed_title
from desktop.ui.feedback import Feedback
from desktop.ui.main_window import MainWindow
from desktop.ui.session import ChatSession
from desktop.ui.store import ChatStore


def plural(count: int, noun: str) -> str:
    """ "1 message", "2 messages"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


class ChatListController(QObject):
    def __init__(
        self,
        window: MainWindow,
        session: ChatSession,
        store: ChatStore | None,
        feedback: Feedback,
        abandon_run: Callable[[], None],
    ) -> None:
        super().__init__(window)
        self.window = window
        self.session = session
        self.store = store
        self.feedback = feedback
        self._abandon_run = abandon_run
        self._deleted: set[int] = set()  # a stopped reply still ending is not saved into these
        c = window.conversations
        c.new_requested.connect(self.new_chat)
        c.open_requested.connect(self.open_conversation)
        c.rename_requested.connect(self._rename)
        c.delete_requested.connect(self._delete)
        c.search_changed.connect(self.refresh)
        window.new_chat_action.triggered.connect(self.new_chat)
        self.refresh()
        if store is not None and store.notice:
            feedback.show_error(store.notice)

    def _call(self, call: Callable[[], Any]) -> Any:
        """Runs a storage call; a HistoryError becomes a message in the window."""
        try:
            return call()
        except EngineError as err:
            self.feedback.show_error(str(err))
            return None

    # ---- the list ----------------------------------------------------------------------------
    @Slot()
    @Slot(str)
    def refresh(self, _search: str | None = None) -> None:
        store = self.store
        if store is None:
            return
        search = self.window.conversations.search.text().strip() or None
        rows = self._call(lambda: store.list_conversations(search)) or []
        self.window.conversations.set_rows(
            [
                (
                    c.id,
                    c.title,
                    f"{c.model} · {plural(c.message_count, 'message')} · "
                    f"{c.updated_at:%Y-%m-%d %H:%M}",
                    chat_tooltip(c),
                )
                for c in rows
            ],
            self.session.conversation_id,
        )

    @Slot()
    def new_chat(self) -> None:
        """An empty chat. A running reply is stopped and saved (partial) to its own chat."""
        self._abandon_run()
        self.session.replace(Conversation())
        self.refresh()

    @Slot(int)
    def open_conversation(self, conv_id: int) -> None:
        store = self.store
        if store is None:
            return
        if conv_id == self.session.conversation_id and self.session.conversation.path():
            return
        conversation = self._call(lambda: store.load(conv_id))
        if conversation is None:
            return
        self._abandon_run()
        self.session.replace(conversation)
        self.refresh()

    @Slot(int, str)
    def _rename(self, conv_id: int, title: str) -> None:
        if self.store is not None:
            store = self.store
            self._call(lambda: store.rename(conv_id, title))
        if conv_id == self.session.conversation_id:
            self.session.conversation.title = title  # the title follows no edit any more
        self.refresh()

    @Slot(int)
    def _delete(self, conv_id: int) -> None:
        if conv_id == self.session.conversation_id:
            self.new_chat()
        self._deleted.add(conv_id)
        if self.store is not None:
            store = self.store
            self._call(lambda: store.delete(conv_id))
        self.refresh()

    # ---- saving (slots for the run controller's and the transcript's signals) ----------------
    def _saving(self, conversation: Conversation) -> ChatStore | None:
        if self.store is None or conversation.id in self._deleted:
            return None
        return self.store

    @Slot(object, object, str)
    def user_sent(self, conversation: Conversation, user: Node, model: str) -> None:
        store = self._saving(conversation)
        if store is not None:
            self._call(lambda: store.save_user(conversation, user, model))
            self._follow_title(conversation, user)
            self.refresh()  # after the message: the list shows its count

    def reply_saver(self, conversation: Conversation, reply: Node, replaces: bool) -> Any:
        """The ChatService `finish` that saves `reply` on the service thread, or None (see
        `TreeStore.reply_saver`)."""
        store = self._saving(conversation)
        return store.reply_saver(conversation, reply, replaces) if store is not None else None

    @Slot(object, object)
    def reply_finished(self, conversation: Conversation, reply: Node) -> None:
        store = self._saving(conversation)
        if store is not None and conversation.id is not None:
            self._call(lambda: store.save_reply(conversation, reply))
            self.refresh()

    @Slot(object, object)
    def user_refused(self, conversation: Conversation, user: Node) -> None:
        store = self._saving(conversation)
        if store is not None:
            self._call(lambda: store.forget(conversation, user))
            self.refresh()

    @Slot(object, object)
    def version_switched(self, conversation: Conversation, node: Node) -> None:
        store = self._saving(conversation)
        if store is not None:
            self._call(lambda: store.set_active(conversation, node))
            self._follow_title(conversation, node)
            self.refresh()

    def _follow_title(self, conversation: Conversation, shown: Node) -> None:
        """A chat named after its first message is renamed after the version now shown
        (chat_title.py); a chat the person renamed keeps its title."""
        title = followed_title(conversation, shown)
        conv_id, store = conversation.id, self._saving(conversation)
        if title is None or conv_id is None or store is None:
            return
        self._call(lambda: store.rename(conv_id, title))
        conversation.title = title
