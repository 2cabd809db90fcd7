"""A conversation as a tree of messages with one active path: what the model reads.

Owns: the tree (every message has a parent; the children of one parent are versions of one
turn: a regenerated reply, an edited user message, a reply branched from a token), which child is
active at each level, the engine's records of each reply, and the operations people do on it
(send, regenerate, edit, branch from a token, switch version), the chat's own settings (system
prompt and sampling: `ChatSettings`, kept with the chat so that changing the defaults never
rewrites an old chat's context), and the one rule for which messages the model reads
(`model_reads`). Listeners are told what changed (napari's evented model: the state lives here,
views subscribe and render).

Knows: the engine's records. Does not know: Qt, SQLite (desktop/history.py saves the tree), how
replies are generated (desktop/chat_service.py runs them).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from desktop.engine.events import (
    GenerationDone,
    GenerationSettings,
    Message,
    Phase,
    PromptInfo,
    Role,
    TokenStep,
)

Change = Literal["added", "updated", "active", "removed", "settings"]
"""What a listener is told; "settings": the chat's `ChatSettings` changed (node: the root)."""
Listener = Callable[[Change, "Node"], None]


@dataclass(frozen=True)
class ChatSettings:
    """What a chat is run with, kept with the chat (saved in history, desktop/history.py).

    system_prompt: read by the model before the first turn ("": none, so a template that has a
    default system prompt inserts its own); None: not recorded (a chat saved before history
    migration m004): the client fills in its default (the window: its default system prompt;
    the CLI: none), which is what such a chat was sent with before.
    generation: the sampling settings of the chat's next reply; None: not chosen yet (the
    model's defaults, or the window's defaults for new chats, apply).
    """

    system_prompt: str | None = ""
    generation: GenerationSettings | None = None

    def with_defaults(self, defaults: ChatSettings) -> ChatSettings:
        """These settings with each unrecorded (None) part taken from `defaults`."""
        return ChatSettings(
            self.system_prompt if self.system_prompt is not None else defaults.system_prompt,
            self.generation if self.generation is not None else defaults.generation,
        )

    @property
    def complete(self) -> bool:
        """Both parts are recorded (nothing None)."""
        return self.system_prompt is not None and self.generation is not None


@dataclass(frozen=True)
class BranchPoint:
    """Where a branched reply left its original: `source` (the original reply's key; None when
    the original was deleted since, for a conversation loaded from history), the 0-based token
    `index` whose token was replaced, the `replaced_id` / `replaced_token` it had, and the
    `picked_id` put in its place."""

    source: int | None
    index: int
    replaced_id: int
    replaced_token: str
    picked_id: int


@dataclass(eq=False)
class Node:
    """One message. key: unique in its conversation, stable (history's message id once saved is
    `message_id`). For a reply: `steps` (one record per token, appended while it is written),
    `prompt` (what the model read), `done` (None while it is being written), `branch` (set when
    it was branched from a token), `phases` (the engine's pipeline phases: tokenize, prefill or
    encode, decode). `text` of a reply is the join of its steps' text."""

    key: int
    role: Role
    text: str = ""
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    active: int = 0  # index in `children` of the active child
    steps: list[TokenStep] = field(default_factory=list)
    prompt: PromptInfo | None = None
    done: GenerationDone | None = None
    model: str | None = None
    message_id: int | None = None
    branch: BranchPoint | None = None
    phases: list[Phase] = field(default_factory=list)

    @property
    def siblings(self) -> list[Node]:
        """The versions of this turn (this node included), oldest first."""
        return self.parent.children if self.parent is not None else [self]

    @property
    def version(self) -> tuple[int, int]:
        """(1-based position among its versions, how many there are): "‹ 2/3 ›"."""
        siblings = self.siblings
        return siblings.index(self) + 1, len(siblings)

    @property
    def failed(self) -> bool:
        """A reply that ended in an error before its first token: the model never reads it."""
        return (
            self.role == "assistant"
            and self.done is not None
            and not self.steps
            and (self.done.finish_reason == "error")
        )

    @property
    def active_child(self) -> Node | None:
        return self.children[self.active] if self.children else None


def refused(user: Node) -> bool:
    """A user message the engine refused before reading it (e.g. longer than the context
    window): it has replies, and each ended in an error with no prompt and no token."""
    return bool(user.children) and all(
        child.role == "assistant"
        and child.done is not None
        and child.done.finish_reason == "error"
        and child.prompt is None
        and not child.steps
        for child in user.children
    )


def model_reads(node: Node) -> bool:
    """Whether the model reads `node` when it is on the path before a new reply: the one rule
    the window and the CLI share.

    A user message is read unless the engine refused it (`refused`). A reply is read when it
    has at least one token and did not end in an error: a reply stopped midway is read as far
    as it got, a failed one (before or after its first token) is not, nor one with no token
    or still being written. desktop/engine/prompt.py then merges what is left into
    alternating turns (case I9: after a failed reply the next message still gets an answer)."""
    if node.role == "user":
        return not refused(node)
    if node.role == "assistant":
        done = node.done
        return done is not None and bool(node.steps) and done.finish_reason != "error"
    return False


class Conversation:
    """The tree and its active path (see the module docstring).

    settings: the chat's `ChatSettings` (system_prompt: a shorthand for the one in settings,
    given alone it keeps the rest). id: the history's conversation id once saved (None before).
    Listeners get (change, node) after each change.
    """

    def __init__(
        self,
        system_prompt: str = "",
        conversation_id: int | None = None,
        settings: ChatSettings | None = None,
    ) -> None:
        self._settings = settings if settings is not None else ChatSettings(system_prompt)
        self.id = conversation_id
        self.title: str | None = None
        self._keys = itertools.count(1)
        self.root = Node(key=0, role="system")  # holds the first turns as children; never shown
        self._by_key: dict[int, Node] = {0: self.root}
        self._listeners: list[Listener] = []

    # -- the chat's settings ---------------------------------------------------------------------
    @property
    def settings(self) -> ChatSettings:
        return self._settings

    def set_settings(self, settings: ChatSettings) -> None:
        """Use `settings` for the chat's next replies; listeners get ("settings", root) when
        they differ from the current ones."""
        if settings != self._settings:
            self._settings = settings
            self._emit("settings", self.root)

    @property
    def system_prompt(self) -> str:
        """What the model reads first ("" when none or not recorded)."""
        return self._settings.system_prompt or ""

    @system_prompt.setter
    def system_prompt(self, text: str) -> None:
        self.set_settings(dataclasses.replace(self._settings, system_prompt=text))

    # -- reading ---------------------------------------------------------------------------------
    def path(self) -> list[Node]:
        """The active path, first turn first (the root is not part of it)."""
        out: list[Node] = []
        node = self.root.active_child
        while node is not None:
            out.append(node)
            node = node.active_child
        return out

    def last(self) -> Node | None:
        path = self.path()
        return path[-1] if path else None

    def node(self, key: int) -> Node:
        """The node with `key`. Raises KeyError."""
        return self._by_key[key]

    def nodes(self) -> Iterator[Node]:
        """Every message (all versions), parents before children."""
        stack = list(reversed(self.root.children))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def messages(self, until: Node | None = None) -> list[Message]:
        """What the model reads for a reply placed under `until` (default: the end of the active
        path): the chat's system prompt (stripped; none when blank), then the turns on the path
        from the first to `until` inclusive that `model_reads`."""
        system = self.system_prompt.strip()
        out = [Message("system", system)] if system else []
        chain = self._chain(until) if until is not None else self.path()
        for node in chain:
            if not model_reads(node):
                continue
            if node.role == "assistant":
                out.append(Message("assistant", "".join(s.text for s in node.steps)))
            else:
                out.append(Message(node.role, node.text))
        return out

    # -- changing --------------------------------------------------------------------------------
    def add_user(self, text: str, parent: Node | None = None) -> Node:
        """A user message after `parent` (default: the end of the active path), made active."""
        return self._add(self._parent_or_last(parent), Node(next(self._keys), "user", text))

    def add_reply(self, parent: Node, model: str | None = None) -> Node:
        """An empty reply under `parent` (usually a user message), made active; the run fills it
        with `append_step` and `finish`."""
        return self._add(parent, Node(next(self._keys), "assistant", model=model))

    def regenerate(self, reply: Node, model: str | None = None) -> Node:
        """A new version of `reply` (same parent), made active; the old one is kept."""
        return self.add_reply(self._parent_of(reply), model)

    def edit(self, user: Node, text: str) -> Node:
        """A new version of the user message `user` with `text` (same parent), made active."""
        return self._add(self._parent_of(user), Node(next(self._keys), "user", text))

    def branch(
        self, reply: Node, index: int, token_id: int, model: str | None = None
    ) -> tuple[Node, tuple[int, ...]]:
        """A new version of `reply` that keeps its first `index` tokens and puts `token_id` in
        place of token `index`. Returns (the new reply, the token ids to force: the kept ones,
        then the picked one). Raises IndexError for an index outside the reply, ValueError for a
        node that is not a reply."""
        if reply.role != "assistant":
            raise ValueError("only a reply can be continued from one of its tokens")
        if not 0 <= index < len(reply.steps):
            raise IndexError(
                f"token index {index} is outside the reply (0..{len(reply.steps) - 1})"
            )
        replaced = reply.steps[index]
        forced = (*(s.id for s in reply.steps[:index]), int(token_id))
        new = self.regenerate(reply, model)
        new.branch = BranchPoint(reply.key, index, replaced.id, replaced.token, int(token_id))
        return new, forced

    def set_prompt(self, reply: Node, prompt: PromptInfo) -> None:
        """What the model read for `reply` (known before its first token)."""
        reply.prompt = prompt
        self._emit("updated", reply)

    def add_phase(self, reply: Node, phase: Phase) -> None:
        """One pipeline phase of `reply` (tokenize and prefill before its first token, decode
        after its last)."""
        reply.phases.append(phase)
        self._emit("updated", reply)

    def append_step(self, reply: Node, step: TokenStep) -> None:
        reply.steps.append(step)
        reply.text += step.text
        self._emit("updated", reply)

    def finish(self, reply: Node, done: GenerationDone, prompt: PromptInfo | None = None) -> None:
        reply.done = done
        if prompt is not None:
            reply.prompt = prompt
        self._emit("updated", reply)

    def switch(self, node: Node, delta: int) -> Node:
        """Make the version `delta` steps away from `node` active (clamped); returns it."""
        siblings = node.siblings
        target = siblings[max(0, min(len(siblings) - 1, siblings.index(node) + delta))]
        self.activate(target)
        return target

    def activate(self, node: Node) -> None:
        """Make `node` (and so every node above it) part of the active path."""
        self._select(node)
        self._emit("active", node)

    def remove(self, node: Node) -> None:
        """Take `node` and everything under it out (e.g. a reply that failed before its first
        token); the previous version, if any, becomes active."""
        parent = self._parent_of(node)
        index = parent.children.index(node)
        parent.children.pop(index)
        if parent.active >= index:  # the removed one or a later one was active: step back one
            parent.active = max(0, parent.active - 1)
        for gone in [node, *self._descendants(node)]:
            self._by_key.pop(gone.key, None)
        self._emit("removed", node)

    # -- listeners -------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(change, node)` after each change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- building from storage -------------------------------------------------------------------
    def attach(self, node: Node, parent: Node | None, active: bool = False) -> Node:
        """Put a node read from storage under `parent` (None: the root), keeping its fields; its
        key is assigned here. For loaders; tells no listener."""
        node.key = next(self._keys)
        node.parent = parent if parent is not None else self.root
        node.parent.children.append(node)
        if active:
            node.parent.active = len(node.parent.children) - 1
        self._by_key[node.key] = node
        return node

    # -- internals -------------------------------------------------------------------------------
    def _add(self, parent: Node, node: Node) -> Node:
        node.parent = parent
        parent.children.append(node)
        self._by_key[node.key] = node
        self._select(node)
        self._emit("added", node)
        return node

    @staticmethod
    def _select(node: Node) -> None:
        """Point every ancestor's `active` at the chain down to `node`."""
        child = node
        while child.parent is not None:
            child.parent.active = child.parent.children.index(child)
            child = child.parent

    def _parent_or_last(self, parent: Node | None) -> Node:
        if parent is not None:
            return parent
        last = self.last()
        return last if last is not None else self.root

    def _parent_of(self, node: Node) -> Node:
        if node.parent is None:
            raise ValueError("the root has no versions")
        return node.parent

    def _chain(self, node: Node) -> list[Node]:
        chain = []
        while node is not self.root and node is not None:
            chain.append(node)
            node = node.parent  # type: ignore[assignment]
        return chain[::-1]

    @staticmethod
    def _descendants(node: Node) -> Iterator[Node]:
        stack = list(node.children)
        while stack:
            child = stack.pop()
            yield child
            stack.extend(child.children)

    def _emit(self, change: Change, node: Node) -> None:
        for listener in list(self._listeners):
            listener(change, node)
