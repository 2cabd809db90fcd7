"""The endpoints: GET /v1/models, POST /v1/chat/completions, POST /v1/completions.

Each POST: read and check the body (validation.py), submit one run to the chat service (503 when
its queue is full), wait for the run's first record, so a prompt the engine refuses (empty,
past the context window, a template that refuses it) is a 400 before any byte is sent, then
answer in one JSON body or as server-sent events: a role chunk, one chunk per token (its text
and, when asked, its logprobs), a finish chunk, the usage chunk when asked, `data: [DONE]`.
A reply that fails while it runs is a 500 (streamed: an error event before [DONE]).
Shapes come from desktop/openai_json.py. Does not know: Qt, SQLite, uvicorn.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from desktop import openai_json as oj
from desktop.chat_service import ChatService, RunHandle, RunRequest, RunResult
from desktop.engine.errors import EngineError
from desktop.engine.events import GenerationDone, PromptInfo, TokenStep
from desktop.server.errors import ApiError, failed_reply, from_engine
from desktop.server.saving import ChatSaver
from desktop.server.streaming import ClientRun, EventStream, sse
from desktop.server.validation import (
    ChatCall,
    CompletionCall,
    parse_chat,
    parse_completion,
    read_json,
)

RUN_LABEL = "server"


@dataclass(frozen=True)
class ServerState:
    """What the endpoints share. saver: None with --no-save. notify: called on the event loop's
    thread with a one-line note per request started and ended (the window's status bar).
    handles: the server's runs not yet over (the service may also run the window's)."""

    service: ChatService
    saver: ChatSaver | None = None
    notify: Callable[[str], None] | None = None
    handles: weakref.WeakSet[RunHandle] = field(default_factory=weakref.WeakSet)

    def cancel_all(self) -> None:
        """Cancel the server's runs (at shutdown), so open streams end within a decode step."""
        for handle in list(self.handles):
            handle.cancel()


@dataclass
class _Reply:
    """A whole reply collected from a run."""

    prompt: PromptInfo
    steps: list[TokenStep]
    done: GenerationDone


def _state(request: Request) -> ServerState:
    return request.app.state.tokenglass


def _model(state: ServerState, asked: str | None = None) -> Any:
    """The loaded model; 503 when there is none, 404 when `asked` names another."""
    model = state.service.model
    if model is None:
        raise ApiError(503, "No model is loaded yet.", kind="server_error", code="no_model")
    if asked is not None and asked != model.name:
        raise ApiError(
            404,
            f"The model {asked!r} does not exist here; this server runs {model.name!r}.",
            kind="invalid_request_error",
            param="model",
            code="model_not_found",
        )
    return model


def _json(body: dict, status: int = 200) -> Response:
    return Response(oj.dumps(body), status_code=status, media_type="application/json")


def _note(state: ServerState, text: str) -> None:
    if state.notify is not None:
        state.notify(text)


async def list_models(request: Request) -> Response:
    model = _model(_state(request))
    entry = oj.model_json(model.name, int(model.path.stat().st_mtime))
    return _json({"object": "list", "data": [entry]})


async def get_model(request: Request) -> Response:
    model = _model(_state(request), request.path_params["model"])
    return _json(oj.model_json(model.name, int(model.path.stat().st_mtime)))


async def _start(
    request: Request,
    run_request: RunRequest,
    finish: Callable[[RunResult], Any] | None,
) -> tuple[ClientRun, PromptInfo]:
    """Submit the run and wait for its PromptInfo. Raises ApiError (503 queue full, 400 for a
    prompt the engine refuses)."""
    state = _state(request)
    try:
        handle = state.service.submit(run_request, finish)
    except EngineError as err:
        raise from_engine(err) from None
    state.handles.add(handle)
    run = ClientRun(handle, request.receive)
    try:
        first = await run.next()
    except EngineError as err:
        run.close()
        raise from_engine(err) from None
    except BaseException:
        run.close()
        raise
    if not isinstance(first, PromptInfo):  # cancelled while it waited: the client has left
        run.close()
        raise ApiError(499, "The request was cancelled.", code="cancelled")
    return run, first


async def _collect(run: ClientRun, prompt: PromptInfo) -> _Reply:
    """Every record of the run, read to its end (so its `finish`, the history save, is over
    before the response goes out). Raises ApiError 500 when the reply failed while running."""
    steps: list[TokenStep] = []
    done: GenerationDone | None = None
    try:
        async for record in run.records():
            if isinstance(record, TokenStep):
                steps.append(record)
            elif isinstance(record, GenerationDone):
                done = record
    finally:
        run.close()
    if done is None:
        raise failed_reply("The reply ended without its last record.")
    if done.finish_reason == "error":
        raise failed_reply(done.error or "The reply failed.")
    return _Reply(prompt, steps, done)


async def chat_completions(request: Request) -> Response:
    state = _state(request)
    body = await read_json(request)
    model = _model(state)
    call = parse_chat(body, model.default_settings(), model.context_size)
    _model(state, call.model)
    finish = state.saver.finish_for(call.messages, model.name) if state.saver else None
    run_request = RunRequest(call.messages, call.settings, label=RUN_LABEL)
    _note(state, f"server: chat request ({len(call.messages)} messages)")
    run, prompt = await _start(request, run_request, finish)
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if call.stream:
        return EventStream(run, _chat_events(state, run, call, ident, created, model.name))
    reply = await _collect(run, prompt)
    _note(state, f"server: replied {reply.done.completion_tokens} tokens")
    return _json(
        oj.chat_completion_json(
            ident, created, model.name, reply.steps, reply.done, call.top_logprobs
        )
    )


async def _chat_events(
    state: ServerState, run: ClientRun, call: ChatCall, ident: str, created: int, model: str
) -> AsyncIterator[bytes]:
    def chunk(delta: dict, logprobs: dict | None = None, done: GenerationDone | None = None):
        return sse(
            oj.chat_chunk_json(ident, created, model, delta, logprobs, done, call.include_usage)
        )

    yield chunk({"role": "assistant", "content": ""})
    async for record in run.records():
        if isinstance(record, TokenStep):
            logprobs = None
            if call.top_logprobs is not None:
                logprobs = oj.chat_logprobs_json([record], call.top_logprobs)
            yield chunk({"content": record.text}, logprobs)
        elif isinstance(record, GenerationDone):
            if record.finish_reason == "error":
                yield sse(failed_reply(record.error or "The reply failed.").body())
                return
            yield chunk({}, done=record)
            if call.include_usage:
                kind = "chat.completion.chunk"
                yield sse(oj.usage_chunk_json(ident, created, model, record, kind))
            _note(state, f"server: replied {record.completion_tokens} tokens")


async def completions(request: Request) -> Response:
    state = _state(request)
    body = await read_json(request)
    model = _model(state)
    call = parse_completion(body, model.default_settings())
    _model(state, call.model)
    run_request = RunRequest((), call.settings, raw_prompt=call.prompt, label=RUN_LABEL)
    _note(state, "server: completion request")
    run, prompt = await _start(request, run_request, None)
    ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    offset = len(call.prompt)  # OpenAI's text_offset counts from the start of the prompt
    if call.stream:
        return EventStream(run, _completion_events(state, run, call, ident, created, model.name))
    reply = await _collect(run, prompt)
    _note(state, f"server: completed {reply.done.completion_tokens} tokens")
    logprobs = None
    if call.logprobs is not None:
        logprobs = oj.legacy_logprobs_json(reply.steps, call.logprobs, offset)
    return _json(
        oj.completion_json(ident, created, model.name, reply.done.text, logprobs, reply.done)
    )


async def _completion_events(
    state: ServerState, run: ClientRun, call: CompletionCall, ident: str, created: int, model: str
) -> AsyncIterator[bytes]:
    offset = len(call.prompt)
    async for record in run.records():
        if isinstance(record, TokenStep):
            logprobs = None
            if call.logprobs is not None:
                logprobs = oj.legacy_logprobs_json([record], call.logprobs, offset)
            offset += len(record.text)
            yield sse(oj.completion_json(ident, created, model, record.text, logprobs, None, True))
        elif isinstance(record, GenerationDone):
            if record.finish_reason == "error":
                yield sse(failed_reply(record.error or "The reply failed.").body())
                return
            yield sse(oj.completion_json(ident, created, model, "", None, record, True))
            if call.include_usage:
                yield sse(oj.usage_chunk_json(ident, created, model, record, "text_completion"))
            _note(state, f"server: completed {record.completion_tokens} tokens")
