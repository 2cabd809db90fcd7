"""Off-GUI-thread work: iterate a run's records, or load a model, on a QThread.

A worker is a QObject moved to its own QThread. It emits one signal per record the engine yields
(`PromptInfo`, `TokenStep`, `GenerationDone`), so slots run on the GUI thread through queued
connections (cases G1-G4). `RunWorker` iterates a `RunHandle` of the chat service (the window's
way to generate); `CallWorker` runs one call (loading a model). Cancelling is cooperative:
`cancel()` sets a `threading.Event` the engine checks between decode steps; a thread is never
terminated. Errors
cross as a signal carrying the user-facing message (case G2): no widget is ever created here.

This module knows the engine's records and error family, not the window.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from desktop.chat_service import RunHandle
from desktop.engine.errors import EngineError
from desktop.engine.events import (
    GenerationDone,
    Phase,
    PrefillProgress,
    PromptInfo,
    TokenStep,
)

log = logging.getLogger(__name__)


class RunWorker(QObject):
    """Iterates a chat service's `RunHandle` and emits a signal per record: prompt_ready
    (PromptInfo), progress (PrefillProgress, one per prefill chunk), phase (Phase), token
    (TokenStep), done (GenerationDone; exactly one of done /
    failed), failed (str: the engine refused before its first record), then finished(). The run
    happens on the service's thread; this thread only hands its records to the GUI thread.
    `cancel()` is thread-safe."""

    prompt_ready = Signal(object)
    progress = Signal(object)
    phase = Signal(object)
    token = Signal(object)
    done = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, handle: RunHandle) -> None:
        super().__init__()
        self.handle = handle

    @property
    def cancel_event(self) -> threading.Event:
        return self.handle.cancel_event

    def cancel(self) -> None:
        self.handle.cancel()

    @Slot()
    def run(self) -> None:
        got_done = False
        try:
            for record in self.handle:
                if isinstance(record, TokenStep):
                    self.token.emit(record)
                elif isinstance(record, PromptInfo):
                    self.prompt_ready.emit(record)
                elif isinstance(record, Phase):
                    self.phase.emit(record)
                elif isinstance(record, PrefillProgress):
                    self.progress.emit(record)
                elif isinstance(record, GenerationDone):
                    got_done = True
                    self.done.emit(record)
        except EngineError as err:
            if not got_done:
                self.failed.emit(str(err))
                got_done = True
        except Exception as err:  # the thread boundary: report anything unforeseen, keep the app up
            log.exception("reading a run failed")
            self.failed.emit(f"Generation failed unexpectedly: {type(err).__name__}: {err}")
            got_done = True
        if not got_done:
            self.failed.emit("The engine ended the reply without a final record.")
        hand_back_and_finish(self)


class CallWorker(QObject):
    """Runs one blocking call (e.g. `load_model(path, provider)`) and emits its result.

    Signals: succeeded(object) with the return value, or failed(str) with the user-facing message;
    then finished().
    """

    succeeded = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__()
        self._call = call

    @Slot()
    def run(self) -> None:
        try:
            result = self._call()
        except EngineError as err:
            self.failed.emit(str(err))
        except Exception as err:  # the thread boundary: report anything unforeseen, keep the app up
            log.exception("background call failed")
            self.failed.emit(f"{type(err).__name__}: {err}")
        else:
            self.succeeded.emit(result)
        hand_back_and_finish(self)


def hand_back_and_finish(worker: RunWorker | CallWorker) -> None:
    """Called last in the worker's thread: moves the worker back to the GUI thread, then emits
    `finished`, so its `deleteLater` runs on the GUI thread.

    Destroying a Python-backed QObject in the worker thread deadlocked (seen in the UI tests):
    ~QObject there holds Qt's connection lock and waits for the GIL (shiboken looks for a Python
    override), while the GUI thread holds the GIL and waits for that lock in a connect().
    """
    app = QCoreApplication.instance()
    if app is not None:
        worker.moveToThread(app.thread())
    worker.finished.emit()


def prepare_thread(worker: RunWorker | CallWorker, parent: QObject) -> QThread:
    """Moves `worker` to a new QThread (child of `parent`) that will run `worker.run`; not
    started, so the caller can connect to `thread.finished` first. The worker deletes itself when
    done, on the GUI thread (see `hand_back_and_finish`); the thread is deleted with `parent` or
    by the caller after `finished` (deleting it from
    its own `finished` would drop queued deliveries of that signal to other receivers)."""
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: QThread.quit is thread-safe, and a queued call would wait for the GUI thread, which
    # may itself be blocked in thread.wait() while the window closes.
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    worker.finished.connect(worker.deleteLater)
    return thread
