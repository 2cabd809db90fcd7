"""A submitted run seen from the event loop, the client's disconnect, and server-sent events.

Owns: `ClientRun`, which (1) iterates the blocking `RunHandle` on a thread of its own and hands
each record to the event loop (so no request ever blocks the loop, and a run waiting in the
queue holds no thread pool worker) and (2) watches the connection from the moment the run is
queued: a client that goes away (`http.disconnect`) cancels its run, which then ends within one
decode step, or at once while it waits. `EventStream` sends `data: {json}` events and the closing
`data: [DONE]` (the SSE framing OpenAI's clients read) and always releases its run.
Does not know: which endpoint, the JSON shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from desktop.chat_service import RunHandle
from desktop.engine.errors import EngineError
from desktop.engine.events import Event
from desktop.openai_json import dumps

log = logging.getLogger(__name__)

_END = object()


class ClientRun:
    """One request's run, read from the event loop. Create it on the loop right after `submit`.

    receive: the request's ASGI receive, read here only (the body must have been read first).
    `next()` returns the next record, None after the last; it raises the EngineError the engine
    refused the request with. `close()` cancels the run if it is still going and stops watching.
    """

    def __init__(self, handle: RunHandle, receive: Receive) -> None:
        self.handle = handle
        self.disconnected = False
        self._records: asyncio.Queue[object] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._pump = threading.Thread(
            target=self._read, args=(loop,), name="server-run", daemon=True
        )
        self._pump.start()
        self._watch = asyncio.ensure_future(self._watch_disconnect(receive))

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        """The pump thread: every record of the handle into the loop's queue, then _END."""
        item: object = _END
        try:
            for record in self.handle:
                self._hand_over(loop, record)
        except EngineError as err:  # the engine refused the request before its first record
            item = err
        finally:
            self._hand_over(loop, item)
            if item is not _END:
                self._hand_over(loop, _END)

    def _hand_over(self, loop: asyncio.AbstractEventLoop, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed (server shut down)
            loop.call_soon_threadsafe(self._records.put_nowait, item)

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self.handle.cancel()
                return

    async def next(self) -> Event | None:
        item = await self._records.get()
        if item is _END:
            self._records.put_nowait(_END)  # a later call ends too
            return None
        if isinstance(item, EngineError):
            raise item
        return item  # type: ignore[return-value]

    async def records(self) -> AsyncIterator[Event]:
        while (record := await self.next()) is not None:
            yield record

    def close(self) -> None:
        """Cancel the run if it is still going, stop watching the connection, and log a
        history save that failed (the reply itself was fine)."""
        self.handle.cancel()  # a no-op for a run that has ended
        self._watch.cancel()
        if self.handle.ended and self.handle.finish_error is not None:
            log.warning("the reply was not saved: %s", self.handle.finish_error)


def sse(value: object) -> bytes:
    """One server-sent event carrying strict JSON (non-finite numbers as null)."""
    return f"data: {dumps(value)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


class EventStream(Response):
    """A `text/event-stream` response: sends each event `events` yields, then `data: [DONE]`.
    The run is closed (cancelled if still going) when the stream ends for any reason."""

    media_type = "text/event-stream"

    def __init__(self, run: ClientRun, events: AsyncIterator[bytes]) -> None:
        self.run = run
        self.events = events
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for event in self.events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": DONE, "more_body": False})
        except OSError:  # the connection broke while sending: the client is gone
            log.info("a client left during its stream")
        finally:
            self.run.close()
