"""The token inspector's and the Pipeline view's behaviour: which reply they show, the one
highlighted token in the window, "Continue from here with this token" from the list of
alternatives, and the Pipeline view's links.

Owns the inspected reply (a `Node`; its records stay in the conversation). Knows the inspector
view and the reply bubbles it is told about; starts a branch through a callable handed in
(`branch(reply, index, token_id) -> bool`, the run controller's), so it never runs anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal, Slot

from desktop.conversation import Node
from desktop.ui.main_window import MainWindow
from desktop.ui.transcript import TranscriptController

Brancher = Callable[[Node, int, int], bool]
Linker = Callable[[Node, str], None]  # (a user message, "tokens" | "prompt"): show it that way


class InspectorController(QObject):
    """Signals: token_shown(reply Node, index) whenever a token of a reply is selected (click,
    arrow keys, a bar of a chart); cleared() when nothing is inspected any more."""

    token_shown = Signal(object, int)
    cleared = Signal()

    def __init__(
        self,
        window: MainWindow,
        transcript: TranscriptController,
        branch: Brancher,
        show_user_as: Linker = lambda _user, _mode: None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.inspector = window.inspector
        self.transcript = transcript
        self._branch = branch
        self._show_user_as = show_user_as
        self.pipeline = window.pipeline
        self.inspected: Node | None = None
        self._widget: Any | None = None
        self.inspector.token_clicked.connect(self._strip_clicked)
        self.inspector.continue_requested.connect(self._continue)
        self.pipeline.token_clicked.connect(self._strip_clicked)
        self.pipeline.link_requested.connect(self._pipeline_link)
        transcript.reply_shown.connect(self._reply_shown)
        transcript.bubble_removed.connect(self._bubble_removed)
        transcript.steps_drawn.connect(self._steps_drawn)
        transcript.reply_updated.connect(self._reply_updated)
        self._charted = 0  # records of the inspected reply in the per-token chart
        self._phased = 0  # phases of the inspected reply in the Pipeline view
        self._prompted = False  # the Pipeline view has the inspected reply's prompt

    def _reply_shown(self, node: Node, widget: Any) -> None:
        widget.token_selected.connect(lambda index, n=node: self._token_selected(n, index))
        if node is self.inspected:  # the same reply, drawn again (a switched version came back)
            self._widget = widget

    def _bubble_removed(self, node: Node) -> None:
        if node is self.inspected:
            self.reset()

    # ---- what is inspected -------------------------------------------------------------------
    def inspect(self, reply: Node) -> None:
        """Show `reply`'s records (its own list: a streaming reply grows in place)."""
        if self.inspected is not reply:
            self._unhighlight()  # one highlighted token in the window, not one per reply
            pinned = self.inspector.current >= 0
            self.inspected = reply
            self._widget = self.transcript.widget_of(reply)
            self.inspector.clear()  # no token of the reply before stays pinned beside this one
            self.inspector.set_reply(reply.steps)
            if pinned:
                self.cleared.emit()  # the Attention and Layers views let it go too
            self._charted = len(reply.steps)
            self.pipeline.set_reply(reply.prompt, reply.phases, reply.steps, reply.model)
            self._phased, self._prompted = len(reply.phases), reply.prompt is not None
            if reply.branch is not None:
                self.inspector.picked = (reply.branch.index, reply.branch.replaced_token)

    @Slot(object, object)
    def run_started(self, _conversation: Any, reply: Node) -> None:
        self.inspect(reply)

    def _steps_drawn(self, reply: Node) -> None:
        if reply is self.inspected:
            for step in reply.steps[self._charted :]:
                self.inspector.add_step(step)
                self.pipeline.add_step(step)
            self._charted = len(reply.steps)

    def _reply_updated(self, reply: Node) -> None:
        """The inspected reply's prompt and phases reach the Pipeline view as they come."""
        if reply is not self.inspected:
            return
        if reply.prompt is not None and not self._prompted:
            self._prompted = True
            self.pipeline.set_prompt(reply.prompt)
        for phase in reply.phases[self._phased :]:
            self.pipeline.add_phase(phase)
        self._phased = len(reply.phases)

    def reset(self) -> None:
        self._unhighlight()
        self.inspected = None
        self._widget = None
        self._charted = self._phased = 0
        self._prompted = False
        self.inspector.clear()
        self.pipeline.clear()
        self.cleared.emit()

    def _unhighlight(self) -> None:
        widget = self._widget
        if widget is not None and shiboken6.isValid(widget):  # its bubble may be gone already
            widget.body.clear_selection()

    # ---- picking tokens ----------------------------------------------------------------------
    def _token_selected(self, reply: Node, index: int) -> None:
        self.inspect(reply)
        self.inspector.show_step(index)
        self.pipeline.show_token(index)
        self.window.inspector_dock.show()
        self.token_shown.emit(reply, index)

    @Slot(int)
    def _strip_clicked(self, index: int) -> None:
        if self._widget is not None and shiboken6.isValid(self._widget):
            self._widget.body.select_span(index)
            self.inspector.show_step(index)
            self.pipeline.show_token(index)
            if self.inspected is not None:
                self.token_shown.emit(self.inspected, index)

    @Slot(str)
    def _pipeline_link(self, target: str) -> None:
        """A Pipeline view link: "inspector", "attention" and "layers" raise that view (the
        latter two follow the selected token); "tokens" / "prompt" show the inspected reply's
        user message as its tokens / as the whole prompt."""
        docks = {
            "inspector": self.window.inspector_dock,
            "attention": self.window.attention_dock,
            "layers": self.window.layers_dock,
        }
        if target in docks:
            docks[target].show()
            docks[target].raise_()
            return
        reply = self.inspected
        if reply is not None and reply.parent is not None and reply.parent.role == "user":
            self._show_user_as(reply.parent, target)

    @Slot(int)
    def _continue(self, token_id: int) -> None:
        """The person picked an alternative of the pinned token: continue the reply from there."""
        reply, index = self.inspected, self.inspector.current
        if reply is None or index < 0 or reply.done is None:
            self.window.statusBar().showMessage("Wait for the reply to finish first.", 5000)
            return
        self._branch(reply, index, token_id)
