"""Whether Regenerate, Edit last and Copy last reply can do something now, and why not: one
place that computes the three from the conversation on screen and the model's state, and one
controller that applies them (enabled state and tooltip) to the window's buttons and action.

`action_states` is Qt-free (a `ChatState` in, an `ActionState` per action out). The
`ActionsController` reads the state from the transcript (messages on screen), the run controller
(busy) and the model controller (a model loaded), and re-applies it whenever one of them changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject

from desktop.conversation import refused
from desktop.ui.shortcuts import with_key

REGENERATE, EDIT_LAST, COPY_REPLY = "regenerate", "edit_last", "copy_reply"

TIPS = {
    REGENERATE: "Generate the last reply again, as a new version (the old one is kept)",
    EDIT_LAST: "Edit your last message and send it as a new version (the old one is kept)",
    COPY_REPLY: "Copy the last reply's text",
}
"""Each action's tooltip while it is enabled (followed by its key)."""


@dataclass(frozen=True)
class ChatState:
    """What the three actions depend on. last_reply_*: the last reply on screen (None: none);
    last_is_reply: the last message on screen is a reply; refused: the engine refused the last
    message before reading it (its reply failed with no prompt and no token)."""

    model_loaded: bool
    busy: bool
    has_user: bool
    last_is_reply: bool
    last_reply_text: str | None
    last_reply_error: str | None
    refused: bool


@dataclass(frozen=True)
class ActionState:
    enabled: bool
    tip: str  # what it does when enabled; why it cannot when disabled


def action_states(state: ChatState) -> dict[str, ActionState]:
    """{REGENERATE, EDIT_LAST, COPY_REPLY: ActionState} for `state`."""
    return {
        REGENERATE: _regenerate(state),
        EDIT_LAST: _edit_last(state),
        COPY_REPLY: _copy_reply(state),
    }


BUSY = "A reply is being written: wait for it to end (or Stop it)"
NO_MODEL = "No model is loaded: choose one in Settings"


def _regenerate(s: ChatState) -> ActionState:
    if s.busy:
        return ActionState(False, BUSY)
    if not s.has_user:
        return ActionState(False, "Nothing to regenerate yet: send a message first")
    if not s.model_loaded:
        return ActionState(False, NO_MODEL)
    if not s.last_is_reply:
        return ActionState(False, "The last message has no reply to regenerate")
    if s.refused:
        return ActionState(
            False, f"The model could not read your message. {_sentence(s.last_reply_error)} Edit it"
        )
    if s.last_reply_error:
        return ActionState(
            True,
            f"The last reply ended in an error. {_sentence(s.last_reply_error)} Generate it again",
        )
    return ActionState(True, TIPS[REGENERATE])


def _edit_last(s: ChatState) -> ActionState:
    if s.busy:
        return ActionState(False, BUSY)
    if not s.has_user:
        return ActionState(False, "Nothing to edit yet: send a message first")
    if not s.model_loaded:
        return ActionState(False, NO_MODEL + " (an edited message is sent to it)")
    return ActionState(True, TIPS[EDIT_LAST])


def _copy_reply(s: ChatState) -> ActionState:
    if s.busy:
        return ActionState(False, BUSY)
    if s.last_reply_text is None:
        return ActionState(False, "No reply to copy yet")
    if not s.last_reply_text:
        why = (
            f": it ended in an error. {_sentence(s.last_reply_error)}" if s.last_reply_error else ""
        )
        return ActionState(False, f"The last reply has no text{why}")
    return ActionState(True, TIPS[COPY_REPLY])


def _sentence(text: str | None) -> str:
    """An engine error as a sentence of its own (it may or may not end with a full stop): the
    tooltips quote it between sentences, never inside brackets."""
    text = (text or "").strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def chat_state(rows: Sequence[Any], model_loaded: bool, busy: bool) -> ChatState:
    """The `ChatState` of the messages on screen (`Shown` rows: .node with role, text, done)."""
    replies = [r.node for r in rows if r.node.role == "assistant"]
    last = replies[-1] if replies else None
    error = last.done.error if last is not None and last.done is not None else None
    return ChatState(
        model_loaded=model_loaded,
        busy=busy,
        has_user=any(r.node.role == "user" for r in rows),
        last_is_reply=bool(rows) and rows[-1].node.role == "assistant",
        last_reply_text=last.text if last is not None else None,
        last_reply_error=error,
        refused=last is not None and last.parent is not None and refused(last.parent),
    )


class ActionsController(QObject):
    """Applies `action_states` to the chat's Regenerate and Edit last buttons and the tool bar's
    Copy last reply (see the module docstring); `sync` re-applies it."""

    def __init__(
        self,
        window: Any,
        transcript: Any,
        models: Any,
        is_busy: Callable[[], bool],
    ) -> None:
        super().__init__(window)
        self.window = window
        self.transcript = transcript
        self.models = models
        self._is_busy = is_busy
        self.states: dict[str, ActionState] = {}
        transcript.path_changed.connect(self.sync)
        transcript.reply_updated.connect(self._reply_updated)
        models.model_ready.connect(self.sync)
        models.model_failed.connect(self.sync)
        self.sync()

    def _reply_updated(self, node: Any) -> None:
        if node.done is not None:  # a reply ended (per-token updates change nothing here)
            self.sync()

    def targets(self) -> dict[str, Any]:
        """action name -> the widgets or QActions it applies to."""
        chat = self.window.chat
        return {
            REGENERATE: [chat.regenerate_button],
            EDIT_LAST: [chat.edit_button],
            COPY_REPLY: [self.window.copy_reply_action],
        }

    def sync(self, *_args: Any) -> None:
        state = chat_state(self.transcript.rows, self.models.model is not None, self._is_busy())
        self.states = action_states(state)
        for name, targets in self.targets().items():
            for target in targets:
                state = self.states[name]
                target.setEnabled(state.enabled)
                # the key only while it does something (shortcuts.py's table; the same names)
                target.setToolTip(with_key(name, state.tip) if state.enabled else state.tip)
