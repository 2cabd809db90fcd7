"""OpenAI's error object and the HTTP status of each fault the server reports.

Every error response is `{"error": {"message", "type", "param", "code"}}`, as OpenAI's API gives
it (its clients raise BadRequestError, AuthenticationError, NotFoundError, ... from the status and
show `message`). Owns the mapping from our faults to statuses: a bad request 400, a missing or
wrong key 401, an unknown model or route 404, a wrong method 405, a body over the limit 413, a
full queue or no model 503, a reply that failed while running 500.
Does not know: routes, the model, how bodies are parsed.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from desktop.chat_service import NoModelError, QueueFullError, ServiceClosedError
from desktop.engine.errors import EngineError, PromptTooLongError

INVALID = "invalid_request_error"
SERVER = "server_error"


class ApiError(Exception):
    """A fault to report as OpenAI's error object. status: HTTP status; kind: OpenAI's `type`
    (invalid_request_error, authentication_error, not_found_error, server_error); param: the
    request field at fault, or None; code: a short machine-readable name, or None."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = INVALID,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_field(param: str, message: str) -> ApiError:
    """400 for one field of the body."""
    return ApiError(400, message, param=param, code="invalid_value")


def unsupported(param: str, what: str) -> ApiError:
    """400 for a feature Tokenglass does not serve (n > 1, tools, response formats, ...)."""
    return ApiError(
        400, f"{what} is not supported by Tokenglass's server.", param=param, code="unsupported"
    )


def from_engine(err: EngineError) -> ApiError:
    """The status of an EngineError: the model busy or missing 503, anything about the request
    (empty message, a prompt past the context window, a template that refuses it) 400."""
    if isinstance(err, QueueFullError):
        return ApiError(503, str(err), kind=SERVER, code="queue_full", headers={"Retry-After": "1"})
    if isinstance(err, NoModelError | ServiceClosedError):
        return ApiError(503, str(err), kind=SERVER, code="model_unavailable")
    if isinstance(err, PromptTooLongError):
        return ApiError(400, str(err), param="messages", code="context_length_exceeded")
    return ApiError(400, str(err))


def failed_reply(message: str) -> ApiError:
    """500 for a reply that ended in an error while it ran (GenerationDone.error)."""
    return ApiError(500, message, kind=SERVER, code="generation_failed")


_HTTP_KINDS = {401: "authentication_error", 404: "not_found_error", 405: INVALID}


async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own faults (no such route, wrong method) in OpenAI's error object."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"There is no route {request.method} {request.url.path}."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    kind = _HTTP_KINDS.get(exc.status_code, INVALID if exc.status_code < 500 else SERVER)
    error = ApiError(exc.status_code, message, kind=kind, headers=dict(exc.headers or {}))
    return error.response()
