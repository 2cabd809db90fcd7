"""How the window keeps its conversations: every history call the window makes goes through a
`ChatStore`, so no controller knows the storage.

`TreeStore` keeps each conversation as the history's tree (desktop/conversation_store.py over
`History`): every version of every message, the active path, each reply's records, prompt,
phases and branch point. A message is saved when it is sent, a reply once it has finished (on
the chat service's thread through `reply_saver`, as desktop/cli_reply.py `saving` does; on the
GUI thread when that could not be), a switch of version as the history's active path; a restart
shows the same versions. The chat's own settings (system prompt, sampling) are saved with it.

Qt-free. Knows `History` and the conversation tree; raises what `History` raises (HistoryError,
an EngineError with a message for the person).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from desktop.chat_service import RunResult
from desktop.conversation import Conversation, Node, refused
from desktop.conversation_store import (
    delete_saved,
    load_conversation,
    save_active,
    save_settings,
    stored_branch,
)
from desktop.engine.events import GenerationDone
from desktop.history import History, default_title
from desktop.history_export import export_text


def keeps(node: Node) -> bool:
    """Whether `node` on the active path is kept: a user message that was not refused, or a
    finished reply with at least one token or no error (a reply that failed before its first
    token is not saved)."""
    if node.role == "user":
        return not refused(node)
    if node.role == "assistant":
        return node.done is not None and not (node.done.error and not node.steps)
    return False


def partial(done: GenerationDone) -> bool:
    """A reply stopped before its end (cancelled or failed)."""
    return done.finish_reason in ("cancelled", "error")


class ChatStore(Protocol):
    """What the window asks of its storage (see the module docstring). `notice`: a message for
    the person from opening the store (e.g. a damaged file was set aside), or None."""

    notice: str | None

    def list_conversations(self, search: str | None = None) -> list[Any]: ...
    def rename(self, conv_id: int, title: str) -> None: ...
    def delete(self, conv_id: int) -> None: ...
    def load(self, conv_id: int) -> Conversation: ...
    def save_user(self, conversation: Conversation, user: Node, model: str) -> None: ...
    def reply_saver(
        self, conversation: Conversation, reply: Node, replaces: bool
    ) -> Callable[[RunResult], int | None] | None: ...
    def save_reply(self, conversation: Conversation, reply: Node) -> None: ...
    def set_active(self, conversation: Conversation, node: Node) -> None: ...
    def forget(self, conversation: Conversation, user: Node) -> None: ...
    def export(self, conv_id: int, fmt: str) -> str: ...
    def save_settings(self, conversation: Conversation) -> None: ...


class TreeStore:
    """A `ChatStore` over the history's message tree (see the module docstring). Conversation
    ids and message ids are History's; each saved node's `message_id` is set."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.notice: str | None = getattr(history, "notice", None)

    def list_conversations(self, search: str | None = None) -> list[Any]:
        return self.history.list_conversations(search)

    def rename(self, conv_id: int, title: str) -> None:
        self.history.rename_conversation(conv_id, title)

    def delete(self, conv_id: int) -> None:
        self.history.delete_conversation(conv_id)

    def load(self, conv_id: int) -> Conversation:
        """The saved conversation with every version, the active path as saved."""
        return load_conversation(self.history, conv_id)

    def export(self, conv_id: int, fmt: str) -> str:
        """Chat `conv_id` as `tokenglass export ID --format json|md` writes it."""
        return export_text(self.history, conv_id, "json" if fmt == "json" else "md")

    def save_user(self, conversation: Conversation, user: Node, model: str) -> None:
        """A message was sent: a new turn or an edited version of one, saved under its parent
        (the conversation is created first, titled after it, when it is new)."""
        if conversation.id is None:
            chat = conversation.settings
            conversation.id = self.history.create_conversation(
                default_title(user.text), model, chat.system_prompt, chat.generation
            )
            conversation.title = default_title(user.text)
        self._save(conversation, user)

    def save_settings(self, conversation: Conversation) -> None:
        """The chat's settings changed: saved (a chat not saved yet gets them when it is)."""
        save_settings(self.history, conversation)

    def reply_saver(
        self, conversation: Conversation, reply: Node, replaces: bool
    ) -> Callable[[RunResult], int | None] | None:
        """A ChatService `finish` that saves `reply` from the run's records on the service
        thread and returns its message id (None: nothing saved: the engine refused the message,
        or a reply failed, or a new version (`replaces`) ended, before its first token). What it
        needs from the conversation is read now, on the caller's thread. None when the reply
        cannot be saved there (its message is not saved yet): `save_reply` then saves it."""
        conv, parent = conversation.id, reply.parent
        if conv is None or parent is None or parent is conversation.root:
            return None
        parent_id = parent.message_id
        if parent_id is None:
            return None
        branch = stored_branch(conversation, reply)
        model, history = reply.model or "", self.history

        def finish(result: RunResult) -> int | None:
            done = result.done
            if done is None or (not result.steps and (done.error or replaces)):
                return None
            return history.add_assistant_message(
                conv,
                done,
                list(result.steps),
                model,
                result.prompt,
                partial(done),
                parent_id=parent_id,
                branch=branch,
                phases=list(result.phases),
            )

        return finish

    def save_reply(self, conversation: Conversation, reply: Node) -> None:
        """A reply finished (also stopped or failed): saved with its records, prompt, phases and
        branch point under its message, unless it failed before its first token."""
        if conversation.id is not None and reply.message_id is None and keeps(reply):
            self._save(conversation, reply)

    def set_active(self, conversation: Conversation, node: Node) -> None:
        """`node` became the active version (a switch): the history's active path follows."""
        if conversation.id is None or not keeps(node):
            return
        if node.message_id is None:
            self._save(conversation, node)  # saving makes it the active version
        else:
            save_active(self.history, conversation, node)

    def forget(self, conversation: Conversation, user: Node) -> None:
        """A refused message leaves no trace (nor an empty conversation)."""
        if conversation.id is None:
            return
        delete_saved(self.history, conversation, user)
        user.message_id = None
        if not self.history.tree(conversation.id):
            self.delete(conversation.id)
            conversation.id = None

    def _save(self, conversation: Conversation, node: Node) -> None:
        """Saves `node` (kept) under its nearest kept ancestor, saving that one first if it is
        not saved yet (a message the engine refused, a reply that failed before its first token
        are never saved: what follows them hangs under the message before them)."""
        conv = conversation.id
        assert conv is not None
        parent = node.parent
        while parent is not None and parent is not conversation.root and not keeps(parent):
            parent = parent.parent
        parent_id = None
        if parent is not None and parent is not conversation.root:
            if parent.message_id is None:
                self._save(conversation, parent)
            parent_id = parent.message_id
        if node.role == "user":
            node.message_id = self.history.add_user_message(conv, node.text, parent_id=parent_id)
            return
        done = node.done
        assert done is not None  # keeps() holds only for finished replies
        node.message_id = self.history.add_assistant_message(
            conv,
            done,
            list(node.steps),
            node.model or "",
            node.prompt,
            partial(done),
            parent_id=parent_id,
            branch=stored_branch(conversation, node),
            phases=list(node.phases),
        )
