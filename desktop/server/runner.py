"""uvicorn on a socket we bind: in the foreground (`tokenglass serve`) or on a thread (the window).

Binding the socket ourselves means the address is known (and printed) before the first request,
a port of 0 gets a free port, and a port in use is one clear ServerStartError. uvicorn runs the
pure-Python h11 protocol on asyncio's own loop (no C extensions to bundle), without websockets or
lifespan events.
On shutdown the server's own runs are cancelled first, so open streams end within one decode
step instead of holding the shutdown.
Does not know: routes, the model, Qt.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from desktop.engine.errors import EngineError

GRACEFUL_SHUTDOWN_S = 3
"""How long a shutdown waits for open responses before it cancels them."""


class ServerStartError(EngineError):
    """The server cannot listen on the address asked for (in use, not this machine's, ...)."""


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one). Raises ServerStartError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise ServerStartError(f"Cannot listen on {host}:{port}: {err}.") from None
    try:
        if os.name != "nt":  # a restart can rebind at once; on Windows it would share a port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise ServerStartError(f"Cannot listen on {host}:{port}: {err.strerror or err}.") from None
    return sock


def base_url(sock: socket.socket) -> str:
    """The API's base URL for a bound socket, e.g. http://127.0.0.1:8080/v1. A socket bound to
    every address (0.0.0.0, ::) is named by the loopback address, which a client on this machine
    can connect to (the wildcard itself is not an address to connect to)."""
    host, port = sock.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)


def make_server(app: Any, *, quiet: bool = False) -> uvicorn.Server:
    """A uvicorn server for `app` (a create_app() app). quiet: leave logging alone and print no
    access log (the window)."""
    options: dict[str, Any] = {"log_config": None, "access_log": False} if quiet else {}
    config = uvicorn.Config(
        app,
        http="h11",
        loop="asyncio",
        ws="none",
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **options,
    )
    return _Server(config, app.state.tokenglass.cancel_all)


def serve_forever(app: Any, sock: socket.socket) -> None:
    """Serve on `sock` until Ctrl-C / SIGTERM (then the signal is raised again, as uvicorn does)."""
    make_server(app).run(sockets=[sock])


class BackgroundServer:
    """The server on a thread of its own (the window's "Local server" switch).

    Binds at once (ServerStartError from here, on the caller's thread); `url` is the base URL;
    `stop()` ends it (cancelling the server's runs) and waits up to `timeout` seconds.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8080) -> None:
        self._sock = bind(host, port)
        self.url = base_url(self._sock)
        self._server = make_server(app, quiet=True)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="server", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
