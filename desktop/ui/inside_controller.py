"""The Attention and Layers views' behaviour: they follow the token selected in a reply (the
token inspector's `token_shown`), and run the model's probe for it off the GUI thread, only
while one of the two views is on screen (chatting costs nothing extra).

One probe run at a time: a token selected while one runs waits, and only the latest waits (so
holding an arrow key through a reply does not queue a run per token). Results are kept for the
last few tokens. Knows the two views, their docks and a `model()` getter; never the engine's
internals (`inside_data` calls `ChatModel.inspect`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from desktop.ui.inside_data import (
    InsideRequest,
    InsideResult,
    inspect_token,
    make_request,
    visible_label,
)
from desktop.ui.main_window import MainWindow
from desktop.ui.worker import CallWorker, prepare_thread

KEPT_RESULTS = 32


class InsideController(QObject):
    """Signals: shown(InsideResult) once both views show a result, failed(str) once they show
    a one-line message (for tests and the self-test)."""

    shown = Signal(object)
    failed = Signal(str)

    def __init__(self, window: MainWindow, model: Callable[[], Any]) -> None:
        super().__init__(window)
        self.window = window
        self.attention = window.attention
        self.layers = window.layers
        self._model = model
        self._selected: tuple[Any, int] | None = None  # (reply node, index)
        self._waiting: InsideRequest | None = None
        self._running: tuple[CallWorker, QThread, InsideRequest] | None = None
        self._results: OrderedDict[tuple[int, int], InsideResult] = OrderedDict()
        self._model_seen: Any = None
        # A tab behind another stays isVisible(); its dock's visibilityChanged says when it shows.
        self._visible = {window.attention_dock: False, window.layers_dock: False}
        for dock in self._visible:
            dock.visibilityChanged.connect(
                lambda visible, d=dock: self._visibility_changed(d, visible)
            )

    @property
    def busy(self) -> bool:
        return self._running is not None

    def on_screen(self) -> bool:
        """Whether the Attention or the Layers tab is shown (not closed, not behind a tab)."""
        return any(self._visible.values())

    # ---- what is selected ----------------------------------------------------------------------
    @Slot(object, int)
    def token_shown(self, reply: Any, index: int) -> None:
        self._selected = (reply, index)
        self.refresh()

    @Slot()
    def reset(self) -> None:
        self._selected = None
        self._waiting = None
        self.attention.clear()
        self.layers.clear()

    @Slot(object)
    def model_changed(self, _model: Any) -> None:
        self._results.clear()
        self.reset()

    def _visibility_changed(self, dock: Any, visible: bool) -> None:
        self._visible[dock] = visible
        if visible:
            self.refresh()

    def refresh(self) -> None:
        """Show the selected token, running the probe if it is not known yet (views on screen)."""
        model = self._model()
        if self._selected is None or model is None or not self.on_screen():
            return
        if model is not self._model_seen:  # results are keyed by reply and index, per model
            self._model_seen = model
            self._results.clear()
        inspector = getattr(model, "inspector", None)
        if inspector is None or not inspector.available:
            self._fail(
                inspector.unavailable_reason() if inspector else "This model has no probe graph."
            )
            return
        request = make_request(model, *self._selected)
        if request is None:
            return
        known = self._results.get(request.reply_key)
        if known is not None and known.request == request:
            self._show(known)
            return
        if self._running is not None:
            self._waiting = request
            return
        self._start(model, request)

    # ---- the probe run -------------------------------------------------------------------------
    def _start(self, model: Any, request: InsideRequest) -> None:
        message = f"Computing attention and layers for “{visible_label(request.chosen)}”…"
        self.attention.heading.setText(message)
        self.layers.heading.setText(message)
        worker = CallWorker(lambda: inspect_token(model, request))
        worker.succeeded.connect(self._succeeded)
        worker.failed.connect(self._fail)
        thread = prepare_thread(worker, self)
        thread.finished.connect(self._finished)
        self._running = (worker, thread, request)
        thread.start()

    @Slot(object)
    def _succeeded(self, result: InsideResult) -> None:
        if self._model_seen is not self._model():
            return  # computed on a model that has been replaced since
        self._results[result.request.reply_key] = result
        while len(self._results) > KEPT_RESULTS:
            self._results.popitem(last=False)
        selected = self._selected
        if selected is not None and (selected[0].key, selected[1]) == result.request.reply_key:
            self._show(result)

    def _show(self, result: InsideResult) -> None:
        self.attention.show_result(result)
        self.layers.show_result(result)
        self.shown.emit(result)

    @Slot(str)
    def _fail(self, message: str) -> None:
        self.attention.show_message(message)
        self.layers.show_message(message)
        self.failed.emit(message)

    @Slot()
    def _finished(self) -> None:
        if self._running is not None:
            self._running[1].deleteLater()
        self._running = None
        if self._waiting is not None:
            self._waiting = None
            self.refresh()

    def shutdown(self) -> None:
        """Wait for a probe run in progress (the window is closing)."""
        if self._running is not None:
            self._running[1].wait()
