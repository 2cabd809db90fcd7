"""How the window keeps its conversations: every history call the window makes goes through a
`ChatStore`, so the storage can change (a straight line of messages today, a tree once history
keeps versions) without touching any controller.

`LinearStore` keeps the *active path* of each conversation in today's `History` (one straight
list of messages per conversation): when the path changes (a new message, a finished reply, a
new or switched version), the stored list is cut where it stops matching the path and the rest
of the path is written again. Versions that are not on the active path live in memory only.

Qt-free. Knows `History` and the conversation tree; raises what `History` raises (HistoryError,
an EngineError with a message for the person).
"""

from __future__ import annotations

from typing import Any, Protocol

from desktop.conversation import Conversation, Node
from desktop.engine.events import GenerationDone


def refused(user: Node) -> bool:
    """A user message the engine refused before reading it (e.g. longer than the context
    window): its reply ended in an error with no prompt and no token. The model never reads such
    a message again and it is not kept."""
    return any(
        child.role == "assistant"
        and child.done is not None
        and child.done.finish_reason == "error"
        and child.prompt is None
        and not child.steps
        for child in user.children
    )


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
    def save_reply(self, conversation: Conversation, reply: Node) -> None: ...
    def set_active(self, conversation: Conversation, node: Node) -> None: ...
    def forget(self, conversation: Conversation, user: Node) -> None: ...


class LinearStore:
    """A `ChatStore` over today's `History`: the active path of each conversation is what is
    saved (see the module docstring). Conversation ids and message ids are History's."""

    def __init__(self, history: Any) -> None:
        self.history = history
        self.notice: str | None = getattr(history, "notice", None)
        self._stored: dict[int, list[Node]] = {}  # per conversation: the nodes saved, in order

    def list_conversations(self, search: str | None = None) -> list[Any]:
        return self.history.list_conversations(search)

    def rename(self, conv_id: int, title: str) -> None:
        self.history.rename_conversation(conv_id, title)

    def delete(self, conv_id: int) -> None:
        self.history.delete_conversation(conv_id)
        self._stored.pop(conv_id, None)

    def load(self, conv_id: int) -> Conversation:
        """The saved conversation as a tree with one version per turn."""
        conversation = Conversation(conversation_id=conv_id)
        parent: Node | None = None
        stored: list[Node] = []
        for message in self.history.messages(conv_id):
            if message.role not in ("user", "assistant"):
                continue
            node = Node(key=0, role=message.role, text=message.text, message_id=message.id)
            if message.role == "assistant":
                node.steps = list(message.steps)
                node.prompt = message.prompt
                node.done = message.done
                node.model = message.model
            parent = conversation.attach(node, parent, active=True)
            stored.append(node)
        self._stored[conv_id] = stored
        return conversation

    def save_user(self, conversation: Conversation, user: Node, model: str) -> None:
        """A message was sent (a new turn or an edited version of one)."""
        if conversation.id is None:
            from desktop.history import default_title

            conversation.id = self.history.create_conversation(default_title(user.text), model)
            self._stored[conversation.id] = []
        self._sync(conversation)

    def save_reply(self, conversation: Conversation, reply: Node) -> None:
        """A reply finished (also stopped or failed)."""
        if conversation.id is not None:
            self._sync(conversation)

    def set_active(self, conversation: Conversation, node: Node) -> None:
        """Another version was made active: the saved list follows the new path."""
        if conversation.id is not None:
            self._sync(conversation)

    def forget(self, conversation: Conversation, user: Node) -> None:
        """A refused message leaves no trace (nor an empty conversation)."""
        conv = conversation.id
        if conv is None:
            return
        self._sync(conversation)
        if not self._stored.get(conv):
            self.delete(conv)
            conversation.id = None

    def _sync(self, conversation: Conversation) -> None:
        conv = conversation.id
        assert conv is not None
        path = [node for node in conversation.path() if keeps(node)]
        stored = self._stored.setdefault(conv, [])
        same = 0
        while same < min(len(stored), len(path)) and stored[same] is path[same]:
            same += 1
        if same < len(stored):
            first = stored[same].message_id
            if first is not None:
                self.history.delete_messages_from(conv, first)
            for gone in stored[same:]:
                gone.message_id = None
            del stored[same:]
        for node in path[same:]:
            node.message_id = self._insert(conv, node)
            stored.append(node)

    def _insert(self, conv: int, node: Node) -> int:
        if node.role == "user":
            return self.history.add_user_message(conv, node.text)
        done = node.done
        assert done is not None
        return self.history.add_assistant_message(
            conv,
            done,
            list(node.steps),
            model=node.model or "",
            prompt=node.prompt,
            partial=partial(done),
        )
