"""One loaded model, one generation at a time, for every client: the window, the CLI, the server.

Owns: the model in use, a bounded first-in-first-out queue of generation requests, and the one
thread that runs them. A request becomes a `RunHandle`: its consumer iterates the engine's
records (`PromptInfo`, `TokenStep`, `GenerationDone`) as they arrive and may cancel at any time.
Runs happen on the service's own thread, so no lock is ever held across a `yield` that a consumer
may abandon: a consumer that stops reading only leaves records in its handle's buffer, and a
cancelled run ends within one decode step (the engine checks the flag between steps).
`finish`, when a request has one, runs on the service thread right after the run (history saves
happen there, off the GUI thread); its EngineError is kept in `RunHandle.finish_error`.

Knows: the engine's records and error family. Does not know: Qt, HTTP, SQLite, conversations.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.engine.errors import EngineError
from desktop.engine.events import (
    Event,
    GenerationDone,
    GenerationSettings,
    Message,
    Phase,
    PromptInfo,
    TokenStep,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_WAITING = 8
"""Requests that may wait behind the running one before `submit` refuses with QueueFullError."""


class QueueFullError(EngineError):
    """Too many requests are waiting for the model; try again when one has finished."""


class NoModelError(EngineError):
    """No model is loaded, so nothing can be generated."""


class ServiceClosedError(EngineError):
    """The service was closed (the app is shutting down)."""


@dataclass(frozen=True)
class RunRequest:
    """One generation. messages: the conversation as the model reads it (chat template applied).
    forced_ids: the first tokens of the reply, given rather than sampled (a branch from a token:
    the original reply's tokens before the branch point, then the picked alternative).
    raw_prompt: a text read as is with no chat template (the server's /v1/completions); when set,
    `messages` is ignored. label: what the run is for, for status lines ("window", "server").
    """

    messages: tuple[Message, ...]
    settings: GenerationSettings
    forced_ids: tuple[int, ...] = ()
    raw_prompt: str | None = None
    label: str = ""


@dataclass
class RunResult:
    """What a finished run produced, handed to the request's `finish` on the service thread.
    error: the engine's refusal before it yielded anything (then `done` is None)."""

    request: RunRequest
    prompt: PromptInfo | None = None
    steps: list[TokenStep] = field(default_factory=list)
    done: GenerationDone | None = None
    error: EngineError | None = None
    phases: list[Phase] = field(default_factory=list)  # the pipeline's, to save with the reply


_END = object()  # the last item of a handle's buffer


class RunHandle:
    """A submitted request. Iterate it (from any one thread) for its records: they end after the
    `GenerationDone`; an EngineError the engine raised before its first record (an empty message,
    a prompt past the context window, a template that refuses) is raised from the iteration.
    `cancel()` is thread-safe and may come before the run starts (it then ends at once)."""

    def __init__(self, request: RunRequest, finish: Callable[[RunResult], Any] | None) -> None:
        self.request = request
        self.cancel_event = threading.Event()
        self.result = RunResult(request)
        self.finish_value: Any = None  # what `finish` returned (e.g. the saved message id)
        self.finish_error: EngineError | None = None
        self._finish = finish
        self._buffer: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._ended = threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def ended(self) -> bool:
        """The run and its `finish` are over."""
        return self._ended.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run and its `finish` are over; False on timeout."""
        return self._ended.wait(timeout)

    def __iter__(self) -> Iterator[Event]:
        while True:
            item = self._buffer.get()
            if item is _END:
                if self.result.error is not None:
                    raise self.result.error
                return
            yield item  # type: ignore[misc]

    # -- the service thread's side -------------------------------------------------------------
    def _put(self, record: Event) -> None:
        if isinstance(record, PromptInfo):
            self.result.prompt = record
        elif isinstance(record, TokenStep):
            self.result.steps.append(record)
        elif isinstance(record, Phase):
            self.result.phases.append(record)
        elif isinstance(record, GenerationDone):
            self.result.done = record
        self._buffer.put(record)

    def _end(self) -> None:
        if self._finish is not None:
            try:
                self.finish_value = self._finish(self.result)
            except EngineError as err:
                self.finish_error = err
            except Exception:  # a thread boundary: log it, the next run still starts
                log.exception("a run's finish step failed")
        self._buffer.put(_END)
        self._ended.set()


class ChatService:
    """The model in use and the queue in front of it (see the module docstring).

    max_waiting: requests that may wait behind the running one. The service's thread starts with
    the first request and ends at `close()`.
    """

    def __init__(self, model: Any | None = None, *, max_waiting: int = DEFAULT_MAX_WAITING):
        self._model = model
        self.max_waiting = max_waiting
        self._waiting: deque[RunHandle] = deque()
        self._running: RunHandle | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the model -----------------------------------------------------------------------------
    @property
    def model(self) -> Any | None:
        return self._model

    def set_model(self, model: Any | None) -> Any | None:
        """Use `model` for the requests that start from now on; returns the previous model (the
        caller closes it once `idle`). A run in progress finishes on the model it started with."""
        with self._cond:
            old, self._model = self._model, model
            return old

    @property
    def busy(self) -> bool:
        """A run is in progress or waiting."""
        with self._cond:
            return self._running is not None or bool(self._waiting)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no run is in progress or waiting; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._running is None and not self._waiting, timeout)

    # -- requests ------------------------------------------------------------------------------
    def submit(
        self, request: RunRequest, finish: Callable[[RunResult], Any] | None = None
    ) -> RunHandle:
        """Queue `request`; returns its handle at once (the run starts when those before it end).

        finish(result): called on the service thread when the run is over (also after a cancel
        or an error); what it returns is `handle.finish_value`.
        Raises NoModelError, QueueFullError (with `max_waiting` requests already waiting),
        ServiceClosedError.
        """
        with self._cond:
            if self._closed:
                raise ServiceClosedError("The model service is shutting down.")
            if self._model is None:
                raise NoModelError("No model is loaded yet: choose one first.")
            # Requests that would wait behind a running one, this one included: when nothing
            # runs, the first in the queue is about to run and waits behind nothing (so a
            # max_waiting of 0 still serves one request at a time).
            behind = len(self._waiting) + (0 if self._running is not None else -1)
            if behind >= self.max_waiting:
                count = len(self._waiting)
                if count == 0:
                    raise QueueFullError(
                        "The model is busy with another request and this server keeps no "
                        "queue; try again when it has finished."
                    )
                raise QueueFullError(
                    f"{count} request{'s are' if count != 1 else ' is'} already waiting for the "
                    "model; try again when one has finished."
                )
            handle = RunHandle(request, finish)
            self._waiting.append(handle)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="chat-service", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return handle

    def generate(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        forced_ids: Sequence[int] = (),
    ) -> RunHandle:
        """Shorthand: submit a chat request with no `finish`."""
        return self.submit(RunRequest(tuple(messages), settings, tuple(forced_ids)))

    def close(self, timeout: float | None = 30.0) -> None:
        """Cancel every run (waiting ones end at once), wait for the thread, refuse new requests.
        Idempotent."""
        with self._cond:
            self._closed = True
            for handle in [*self._waiting, *([self._running] if self._running else [])]:
                handle.cancel()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- the service thread --------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._closed)
                if not self._waiting:
                    return  # closed and nothing left
                handle = self._waiting.popleft()
                self._running = handle
                model = self._model
            try:
                self._run(model, handle)
            finally:
                handle._end()
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    @staticmethod
    def _run(model: Any, handle: RunHandle) -> None:
        request, cancel = handle.request, handle.cancel_event
        try:
            if model is None:
                raise NoModelError("No model is loaded yet: choose one first.")
            if request.raw_prompt is not None:
                records = model.complete(request.raw_prompt, request.settings, cancel=cancel)
            elif request.forced_ids:
                records = model.generate(
                    request.messages, request.settings, cancel=cancel, forced_ids=request.forced_ids
                )
            else:
                records = model.generate(request.messages, request.settings, cancel=cancel)
            for record in records:
                handle._put(record)
        except EngineError as err:
            if handle.result.done is None:
                handle.result.error = err
        except Exception as err:  # the thread boundary: a bug must not stop the next run
            log.exception("generation failed")
            handle.result.error = EngineError(
                f"Generation failed unexpectedly: {type(err).__name__}: {err}"
            )
