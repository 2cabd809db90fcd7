"""The Starlette app: routes, the API key gate, CORS, and OpenAI-shaped errors for every fault.

`create_app(service, ...)` serves whatever model `service` holds (the CLI's own, or the one the
window has loaded); requests from the server and from the window take turns in its queue.
Middleware, outermost first: CORS (only when origins are named; then its preflight needs no
key), the API key gate (only when a key is set: `Authorization: Bearer KEY`, compared in constant
time; 401 otherwise, on every route). No middleware reads the body, so the endpoints' disconnect
watch (streaming.py) is the only reader of `receive`.
Does not know: Qt, how the server is started (runner.py).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from desktop.chat_service import ChatService
from desktop.server import routes
from desktop.server.errors import ApiError, on_api_error, on_http_exception
from desktop.server.saving import ChatSaver

log = logging.getLogger(__name__)


class ApiKeyGate:
    """Pure ASGI middleware: an HTTP request without `Authorization: Bearer <key>` gets 401."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(Headers(scope=scope)):
            error = ApiError(
                401,
                "Missing or wrong API key: send `Authorization: Bearer <key>` with the key the "
                "server was started with (--api-key).",
                kind="authentication_error",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await error.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, headers: Headers) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        given = token.strip().encode("utf-8")
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self.key)


async def _on_unexpected(_request: Request, exc: Exception) -> Response:
    """A bug in a route: logged, and answered in OpenAI's shape (500) instead of plain text."""
    log.error("a request failed", exc_info=exc)
    error = ApiError(500, f"The server failed: {type(exc).__name__}.", kind="server_error")
    return error.response()


def create_app(
    service: ChatService,
    *,
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
    saver: ChatSaver | None = None,
    notify: Callable[[str], None] | None = None,
) -> Starlette:
    """The OpenAI-compatible app over `service`. saver: saves chats (None: nothing saved);
    notify: a one-line note per request (called on the server's event loop thread)."""
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    if api_key:
        middleware.append(Middleware(ApiKeyGate, key=api_key))
    app = Starlette(
        routes=[
            Route("/v1/models", routes.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", routes.get_model, methods=["GET"]),
            Route("/v1/chat/completions", routes.chat_completions, methods=["POST"]),
            Route("/v1/completions", routes.completions, methods=["POST"]),
        ],
        middleware=middleware,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
            Exception: _on_unexpected,
        },
    )
    app.state.tokenglass = routes.ServerState(service, saver, notify)
    return app
