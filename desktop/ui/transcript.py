"""The chat column as a rendering of the conversation: one bubble per message on the active path.

Owns: which bubble shows which message (`Node`), and keeping the bubbles equal to the active path
(napari's evented model: it subscribes to the `Conversation` and renders what it says; bubbles own
no conversation data). When the path changes (a new message, a switched version, a removed
reply), the bubbles from the first difference on are replaced and those before it stay. Versions:
"‹ 2/3 ›" and Alt+Left / Alt+Right on a bubble switch the active path here.

Signals (for the other controllers, wired in app.py): user_shown(node, bubble),
reply_shown(node, bubble) when a bubble is made; bubble_removed(node); path_changed();
steps_drawn(node) after a reply's new records were drawn; reply_updated(node) after any change
to a shown reply (its prompt, a phase, a token, its end);
context_used(int) (tokens of the context the chat on screen uses); version_switched(conversation,
node).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QApplication, QWidget

from desktop.conversation import Conversation, Node
from desktop.ui.feedback import Feedback
from desktop.ui.main_window import MainWindow
from desktop.ui.messages import AssistantMessageWidget, UserMessageWidget
from desktop.ui.session import ChatSession
from desktop.ui.store import partial
from desktop.ui.token_view import token_label


@dataclass
class Shown:
    """A message on screen: its node and its bubble (role, text and records are the node's)."""

    node: Node
    widget: Any
    drawn_prompt: bool = False
    drawn_branch: bool = False
    drawn_done: bool = False

    @property
    def role(self) -> str:
        return self.node.role

    @property
    def text(self) -> str:
        return self.node.text

    @property
    def steps(self) -> list:
        return self.node.steps

    @property
    def phases(self) -> list:
        return self.node.phases

    @property
    def prompt(self) -> Any:
        """A reply's prompt; for a user message, the prompt its reply read."""
        if self.node.role == "user":
            child = self.node.active_child
            return child.prompt if child is not None else None
        return self.node.prompt

    @property
    def done(self) -> Any:
        return self.node.done


class TranscriptController(QObject):
    user_shown = Signal(object, object)
    reply_shown = Signal(object, object)
    bubble_removed = Signal(object)
    path_changed = Signal()
    context_used = Signal(int)
    steps_drawn = Signal(object)
    reply_updated = Signal(object)
    version_switched = Signal(object, object)

    def __init__(
        self,
        window: MainWindow,
        session: ChatSession,
        feedback: Feedback,
        is_busy: Callable[[], bool],
    ) -> None:
        super().__init__(window)
        self.window = window
        self.session = session
        self.feedback = feedback
        self._is_busy = is_busy
        self.rows: list[Shown] = []
        self._unsubscribe: Callable[[], None] | None = None
        session.replaced.connect(self._replaced)
        window.copy_reply_action.triggered.connect(self.copy_last_reply)
        self._watch(session.conversation)

    @property
    def conversation(self) -> Conversation:
        return self.session.conversation

    @property
    def turns(self) -> list[Shown]:
        """The messages on screen, first to last."""
        return list(self.rows)

    def shown(self, node: Node) -> Shown | None:
        return next((row for row in self.rows if row.node is node), None)

    def widget_of(self, node: Node) -> Any | None:
        row = self.shown(node)
        return row.widget if row is not None else None

    # ---- following the conversation ----------------------------------------------------------
    def _watch(self, conversation: Conversation) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = conversation.subscribe(self._changed)

    @Slot(object)
    def _replaced(self, conversation: Conversation) -> None:
        self._watch(conversation)
        for row in self.rows:
            self.bubble_removed.emit(row.node)
        self.rows = []
        self.window.chat.clear_bubbles()
        self.feedback.forget()
        self.sync()

    def _changed(self, change: str, node: Node) -> None:
        if change == "updated":
            row = self.shown(node)
            if row is not None:
                self._update(row)
                self.reply_updated.emit(node)
        else:
            self.sync()

    def sync(self) -> None:
        """Make the bubbles equal the active path (a message being edited stays on screen: the
        editor opens in its bubble)."""
        path = self.conversation.path()
        same = 0
        while same < min(len(self.rows), len(path)) and self.rows[same].node is path[same]:
            same += 1
        for row in self.rows[same:]:
            self.window.chat.remove_bubble(row.widget)
            self.bubble_removed.emit(row.node)
        del self.rows[same:]
        for node in path[same:]:
            self._add(node)
        for row in self.rows:
            row.widget.versions.set_version(*row.node.version)
        self.refresh_context()
        self.path_changed.emit()

    def _add(self, node: Node) -> None:
        if node.role == "user":
            widget: QWidget = UserMessageWidget(node.text)
            row = Shown(node, widget)
            widget.copy_requested.connect(lambda r=row: self._copy(r))
        else:
            widget = AssistantMessageWidget(node.model or "")
            row = Shown(node, widget)
            widget.copy_requested.connect(lambda r=row: self._copy(r))
        widget.versions.switch_requested.connect(lambda delta, n=node: self.switch(n, delta))
        self.rows.append(row)
        self.window.chat.add_bubble(widget)
        if node.role == "user":
            self.user_shown.emit(node, widget)
        else:
            self.reply_shown.emit(node, widget)
            self._update(row)

    def _node_or_none(self, key: int) -> Node | None:
        try:
            return self.conversation.node(key)
        except KeyError:
            return None

    def _update(self, row: Shown) -> None:
        """Draws what the reply has that its bubble does not show yet."""
        node, widget = row.node, row.widget
        if node.role != "assistant":
            return
        if node.branch is not None and not row.drawn_branch:  # set just after the reply is added
            row.drawn_branch = True
            source = self._node_or_none(node.branch.source)
            data = b""
            if source is not None and node.branch.index < len(source.steps):
                data = source.steps[node.branch.index].bytes
            widget.set_branch(node.branch.index, token_label(node.branch.replaced_token, data))
        if node.prompt is not None and not row.drawn_prompt:
            row.drawn_prompt = True
            widget.set_reading(len(node.prompt.prompt_ids), node.prompt.dropped_messages)
            self.context_used.emit(len(node.prompt.prompt_ids))
            user = self.shown(node.parent) if node.parent is not None else None
            if user is not None:
                user.widget.enable_prompt(True)
        drawn = len(widget.steps)
        if len(node.steps) > drawn:
            widget.show_steps(node.steps)
            self.steps_drawn.emit(node)
            if node.prompt is not None and any(i % 8 == 0 for i in range(drawn, len(node.steps))):
                self.context_used.emit(len(node.prompt.prompt_ids) + len(node.steps))
        if node.done is not None and not row.drawn_done:
            row.drawn_done = True
            if node.prompt is None and node.done.error and not node.steps:
                widget.show_error(node.done.error)  # refused before reading: no footer
            else:
                widget.finish(node.done, partial(node.done))
                self.context_used.emit(node.done.prompt_tokens + node.done.completion_tokens)
        elif node.done is None:
            widget.set_busy(True)

    def refresh_context(self) -> None:
        """Context used by the chat on screen: the last finished reply's prompt + its tokens."""
        done = next(
            (
                r.node.done
                for r in reversed(self.rows)
                if r.node.role == "assistant" and r.node.done is not None
            ),
            None,
        )
        self.context_used.emit(done.prompt_tokens + done.completion_tokens if done else 0)

    # ---- versions ----------------------------------------------------------------------------
    def switch(self, node: Node, delta: int) -> None:
        """Show the version `delta` steps away from `node` (and the turns after it)."""
        if self._is_busy():
            self.feedback.status("Wait for the current reply to finish.")
            return
        if node not in self.conversation.path():
            return
        target = self.conversation.switch(node, delta)
        if target is not node:
            self.version_switched.emit(self.conversation, target)
            widget = self.widget_of(target)
            if widget is not None:
                widget.body.setFocus()  # Alt+arrows go on switching the same message

    # ---- copying -----------------------------------------------------------------------------
    def _copy(self, row: Shown) -> None:
        QApplication.clipboard().setText(row.node.text)
        self.feedback.status("Copied.", 2000)

    @Slot()
    def copy_last_reply(self) -> None:
        replies = [r for r in self.rows if r.node.role == "assistant"]
        if replies:
            QApplication.clipboard().setText(replies[-1].node.text)
