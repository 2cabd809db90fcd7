"""Closing the window: never while a thread still runs under it.

Owns the pending close. A close while a reply runs (or a model loads) stops the reply, says that
the window is closing and closes once everything has ended; `shutdown` (the window's last act)
waits for the run threads (their partial replies are saved), waits for model loads, saves
settings, stops the local server, closes the chat service and the model.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Slot

from desktop.chat_service import ChatService
from desktop.ui.main_window import MainWindow
from desktop.ui.model_controller import ModelController
from desktop.ui.run_controller import RunController


class Lifetime(QObject):
    def __init__(
        self,
        window: MainWindow,
        runs: RunController,
        models: ModelController,
        service: ChatService,
        server: Any | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.runs = runs
        self.models = models
        self.service = service
        self.server = server  # the "Local server" switch: stopped before the service closes
        self._close_pending = False
        window.closing.connect(self.shutdown)
        window.close_guard = self.may_close
        runs.idle.connect(self._finish_close_if_idle)
        models.loader_ended.connect(self._finish_close_if_idle)

    def _idle(self) -> bool:
        return not self.runs.busy and not self.models.loaders

    def may_close(self) -> bool:
        """The window's close guard: closes now when nothing runs; else stops the reply (and
        waits for a model load), shows that it is closing and closes when they have ended."""
        if self._idle():
            return True
        self._close_pending = True
        self.runs.stop()
        self.runs.cancel_all()
        self.window.chat.input.setEnabled(False)
        self.window.statusBar().showMessage("Closing: waiting for the model to stop…")
        return False

    @Slot()
    def _finish_close_if_idle(self) -> None:
        if self._close_pending and self._idle():
            self._close_pending = False
            QTimer.singleShot(0, self.window.close)

    @Slot()
    def shutdown(self) -> None:
        """The window closes (idempotent): stop any reply and wait for its thread, wait for a
        model load, save settings, stop the local server, close the service and the model."""
        self.runs.wait_all()
        for _worker, thread in list(self.models.loaders):
            thread.wait()
        self.models.flush_settings()
        if self.server is not None:
            self.server.stop()
        self.service.close()
        self.models.close_model()
