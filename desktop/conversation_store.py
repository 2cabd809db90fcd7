"""A `Conversation` in and out of the history database: load a saved tree with its chat settings,
save nodes as they happen (a message under its parent, a finished reply with its records, the
active version) and the chat's settings when they change.

Owns: the mapping between a conversation's node keys and the history's message ids (a node's
`message_id` once saved; a branch point's source key <-> the source's message id). Does not know:
Qt, SQL (desktop/history.py runs it), generation (desktop/chat_service.py).

Threads: the functions that take a `Node` read it and set its `message_id`; call them on the
thread that changes the conversation. To save off that thread (a ChatService `finish`), gather
`parent_message_id(...)` and `stored_branch(...)` on it first and call `History` with those.
"""

from __future__ import annotations

import dataclasses

from desktop.conversation import BranchPoint, ChatSettings, Conversation, Node
from desktop.history import History, StoredBranch, StoredMessage, default_title


def load_conversation(
    history: History, conv_id: int, system_prompt: str | None = None
) -> Conversation:
    """The saved conversation `conv_id` as a tree, every version with its records, the active
    path as saved, its `ChatSettings` as saved (parts not recorded stay None); each node's
    `message_id` set. system_prompt: given, it replaces the saved one (e.g. `--system`).
    Raises HistoryError when there is no such conversation."""
    summary = history.conversation(conv_id)
    settings = ChatSettings(summary.system_prompt, summary.settings)
    if system_prompt is not None:
        settings = dataclasses.replace(settings, system_prompt=system_prompt)
    conversation = Conversation(conversation_id=conv_id, settings=settings)
    conversation.title = summary.title
    by_id: dict[int, Node] = {}
    has_active: set[int] = set()
    stored = history.tree(conv_id)
    for message in stored:  # parents come before their children
        parent = by_id.get(message.parent_id) if message.parent_id is not None else None
        node = conversation.attach(_node(message), parent, active=message.active)
        by_id[message.id] = node
        if message.active:
            has_active.add(id(node.parent))
    for node in [conversation.root, *by_id.values()]:
        if node.children and id(node) not in has_active:  # none marked: the latest, as history
            node.active = len(node.children) - 1
    for message in stored:
        if message.branch is not None:
            source = by_id.get(message.branch.source_id) if message.branch.source_id else None
            by_id[message.id].branch = BranchPoint(
                source.key if source is not None else None,
                message.branch.index,
                message.branch.replaced_id,
                message.branch.replaced_token,
                message.branch.picked_id,
            )
    return conversation


def ensure_saved(history: History, conversation: Conversation, model: str) -> int:
    """The conversation's history id, creating the conversation (titled after its first user
    message, with its chat settings) when it has none yet. Raises HistoryError."""
    if conversation.id is None:
        first = next((n.text for n in conversation.path() if n.role == "user"), "")
        chat = conversation.settings
        conversation.id = history.create_conversation(
            default_title(first), model, chat.system_prompt, chat.generation
        )
        conversation.title = default_title(first)
    return conversation.id


def save_settings(history: History, conversation: Conversation) -> None:
    """Save the conversation's `ChatSettings` (nothing happens before it is saved: creating it
    saves them). Raises HistoryError."""
    if conversation.id is not None:
        chat = conversation.settings
        history.set_chat_settings(conversation.id, chat.system_prompt, chat.generation)


def save_message(
    history: History, conversation: Conversation, node: Node, partial: bool = False
) -> int:
    """Save `node` under its parent's saved message and make it the active version there (as
    the conversation made it): a user message when it is sent, a reply once finished (with its
    records, prompt, phases and branch point). Sets and returns `node.message_id`.

    partial: the reply was stopped before its end (cancelled and failed replies are partial
    anyway). Raises ValueError for an unfinished reply, an unsaved parent or conversation;
    HistoryError from the database.
    """
    if conversation.id is None:
        raise ValueError("save the conversation first (ensure_saved)")
    parent = parent_message_id(conversation, node)
    if node.role == "assistant":
        if node.done is None:
            raise ValueError("a reply is saved once it is finished")
        node.message_id = history.add_assistant_message(
            conversation.id,
            node.done,
            node.steps,
            node.model or "",
            node.prompt,
            partial,
            parent_id=parent,
            branch=stored_branch(conversation, node),
            phases=node.phases,
        )
    else:
        node.message_id = history.add_user_message(conversation.id, node.text, parent_id=parent)
    return node.message_id


def save_active(history: History, conversation: Conversation, node: Node) -> None:
    """Record that `node` (saved) and its ancestors are the active versions, after a switch."""
    if conversation.id is None or node.message_id is None:
        raise ValueError("only a saved message can be made active in the history")
    history.set_active(conversation.id, node.message_id)


def delete_saved(history: History, conversation: Conversation, node: Node) -> None:
    """Delete `node` and everything under it from the history (Conversation.remove does the
    same to the tree); nothing happens for a node never saved."""
    if conversation.id is not None and node.message_id is not None:
        history.delete_message(conversation.id, node.message_id)


def parent_message_id(conversation: Conversation, node: Node) -> int | None:
    """The message id `node` is saved under: None for a first turn. Raises ValueError when
    the parent is not saved yet."""
    parent = node.parent
    if parent is None or parent is conversation.root:
        return None
    if parent.message_id is None:
        raise ValueError("save the message before this one first")
    return parent.message_id


def stored_branch(conversation: Conversation, node: Node) -> StoredBranch | None:
    """`node.branch` with the source's message id in place of its key (None: not saved)."""
    point = node.branch
    if point is None:
        return None
    source = None
    if point.source is not None:
        try:
            source = conversation.node(point.source).message_id
        except KeyError:  # the source was removed from the tree
            source = None
    return StoredBranch(
        source, point.index, point.replaced_id, point.replaced_token, point.picked_id
    )


def _node(message: StoredMessage) -> Node:
    return Node(
        key=0,  # attach() assigns it
        role=message.role,
        text=message.text,
        steps=list(message.steps),
        prompt=message.prompt,
        done=message.done,
        model=message.model,
        message_id=message.id,
        phases=list(message.phases),
    )
