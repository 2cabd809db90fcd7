"""A request body -> a checked call: the messages or prompt and the GenerationSettings to run.

Owns: reading the body within MAX_BODY_BYTES (413 past it), strict JSON (400), and each field of
OpenAI's Chat Completions and legacy Completions requests: its type and range (400 naming the
field), the fields Tokenglass does not serve (`n` other than 1, tools, response formats other than
text, logit_bias, echo, best_of, suffix, penalties other than 0: 400 saying so), and our extra
fields `top_k`, `min_p`, `repetition_penalty`. Unknown fields are ignored, as front ends send
their own. Fields left out take the model's defaults (generation_config.json, as the window
starts from), except max_tokens: a chat reply runs until its end-of-turn token or the context
window is full (OpenAI's default), a completion stops after 16 tokens (OpenAI's legacy default).
Does not know: HTTP routing, the service, the response shapes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from desktop.engine.events import GenerationSettings, Message
from desktop.engine.sampling import MAX_SEED
from desktop.engine.tokenizer import well_formed
from desktop.server.errors import ApiError, bad_field, unsupported

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body read (1 MiB: about 250,000 tokens of text, far past any context
window of the models we run); a larger one gets 413 before it is parsed."""
MAX_TOP_LOGPROBS = 20
MAX_STOP_STRINGS = 16
RECORD_ALTERNATIVES = 10
"""Alternatives computed per token whatever the request asks (at least this many), so a chat
saved from the server shows the same token views as the window's; responses carry the asked
count."""
COMPLETION_DEFAULT_MAX_TOKENS = 16
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class ChatCall:
    """A checked /v1/chat/completions request. top_logprobs: alternatives per token in the
    response, or None when `logprobs` was not asked."""

    model: str
    messages: tuple[Message, ...]
    settings: GenerationSettings
    stream: bool
    include_usage: bool
    top_logprobs: int | None


@dataclass(frozen=True)
class CompletionCall:
    """A checked /v1/completions request. logprobs: the legacy integer (alternatives per token),
    or None when not asked."""

    model: str
    prompt: str
    settings: GenerationSettings
    stream: bool
    include_usage: bool
    logprobs: int | None


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object. Raises ApiError: 413 past MAX_BODY_BYTES, 400 for a body that
    is not UTF-8 JSON or not an object."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as err:
        raise ApiError(400, f"The body is not valid JSON: {err}.", code="invalid_json") from None
    if not isinstance(value, dict):
        raise ApiError(400, "The body must be a JSON object.", code="invalid_json")
    return value


def parse_chat(body: dict[str, Any], defaults: GenerationSettings, context_size: int) -> ChatCall:
    """Check a chat request. defaults: the model's settings; context_size: the default reply
    length (the reply then ends at the window's edge). Raises ApiError (400)."""
    _refuse_unsupported(body, chat=True)
    logprobs = _flag(body, "logprobs")
    top = _integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top is not None and top > 0 and not logprobs:
        raise bad_field("top_logprobs", "top_logprobs needs `logprobs: true`.")
    asked = (top or 0) if logprobs else None
    max_tokens = _integer(body, "max_completion_tokens", 1, None)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1, None)
    stream = bool(_flag(body, "stream"))
    return ChatCall(
        model=_model(body),
        messages=_messages(body),
        settings=_settings(body, defaults, max_tokens or context_size, asked or 0),
        stream=stream,
        include_usage=stream and _include_usage(body),
        top_logprobs=asked,
    )


def parse_completion(body: dict[str, Any], defaults: GenerationSettings) -> CompletionCall:
    """Check a legacy completions request (`prompt`: a string, or a list of one string).
    Raises ApiError (400)."""
    _refuse_unsupported(body, chat=False)
    logprobs = _integer(body, "logprobs", 0, MAX_TOP_LOGPROBS)
    max_tokens = _integer(body, "max_tokens", 1, None) or COMPLETION_DEFAULT_MAX_TOKENS
    stream = bool(_flag(body, "stream"))
    return CompletionCall(
        model=_model(body),
        prompt=_prompt(body),
        settings=_settings(body, defaults, max_tokens, logprobs or 0),
        stream=stream,
        include_usage=stream and _include_usage(body),
        logprobs=logprobs,
    )


# -- fields ----------------------------------------------------------------------------------


def _settings(
    body: dict[str, Any], defaults: GenerationSettings, max_tokens: int, alternatives: int
) -> GenerationSettings:
    given = {
        "temperature": _real(body, "temperature", 0.0, 2.0),
        "top_p": _real(body, "top_p", 0.0, 1.0),
        "top_k": _integer(body, "top_k", 0, None),
        "min_p": _real(body, "min_p", 0.0, 1.0),
        "repetition_penalty": _real(body, "repetition_penalty", 0.0, None, above=True),
        "seed": _integer(body, "seed", -1, MAX_SEED),
    }
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if changes.get("seed") == -1:  # llama.cpp's "random", which some front ends send
        changes["seed"] = None
    changes["max_new_tokens"] = max_tokens
    changes["top_logprobs"] = max(alternatives, RECORD_ALTERNATIVES)
    changes["stop_strings"] = _stop(body)
    return dataclasses.replace(defaults, **changes)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_field("model", "`model` is required: a model id from GET /v1/models.")
    return model


def _messages(body: dict[str, Any]) -> tuple[Message, ...]:
    rows = body.get("messages")
    if not isinstance(rows, list) or not rows:
        raise bad_field("messages", "`messages` must be a non-empty list of messages.")
    messages = []
    for i, row in enumerate(rows):
        where = f"messages[{i}]"
        if not isinstance(row, dict):
            raise bad_field(where, f"{where} must be an object with `role` and `content`.")
        role = row.get("role")
        if role in ("tool", "function"):
            raise unsupported(f"{where}.role", f"The {role!r} role (tool calling)")
        if role not in _ROLES:
            raise bad_field(
                f"{where}.role", f"{where}.role must be system, user or assistant, got {role!r}."
            )
        messages.append(Message(_ROLES[role], _content(row.get("content"), where)))  # type: ignore[arg-type]
    if not any(m.role == "user" for m in messages):
        raise bad_field("messages", "`messages` needs at least one user message.")
    return tuple(messages)


def _content(content: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts (joined); null for an empty turn."""
    if content is None:
        return ""
    if isinstance(content, str):
        return well_formed(content)
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise unsupported(f"{where}.content", f"A content part of type {kind!r}")
            if not isinstance(part.get("text"), str):
                raise bad_field(f"{where}.content", f"{where}: a text part needs a `text` string.")
            texts.append(part["text"])
        return well_formed("".join(texts))
    raise bad_field(f"{where}.content", f"{where}.content must be a string or a list of parts.")


def _prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    elif isinstance(prompt, list):
        raise unsupported("prompt", "A prompt that is a list of several prompts or of token ids")
    if not isinstance(prompt, str):
        raise bad_field("prompt", "`prompt` must be a string.")
    return well_formed(prompt)


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad_field("stop", "`stop` must be a string or a list of strings.")
    if len(stops) > MAX_STOP_STRINGS:
        raise bad_field("stop", f"`stop` takes at most {MAX_STOP_STRINGS} strings.")
    return tuple(well_formed(s) for s in stops if s)


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise bad_field("stream_options", "`stream_options` must be an object.")
    value = options.get("include_usage")
    if value is not None and not isinstance(value, bool):
        raise bad_field("stream_options.include_usage", "`include_usage` must be true or false.")
    return bool(value)


def _refuse_unsupported(body: dict[str, Any], *, chat: bool) -> None:
    """400 for what we do not serve; a field sent at its neutral value passes (clients such as
    SillyTavern send `n: 1`, `frequency_penalty: 0`, `tools: []`)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise unsupported("n", f"n = {n!r} (more than one choice per request)")
    for name in ("tools", "functions", "logit_bias"):
        if body.get(name):
            raise unsupported(name, "Tool calling" if name != "logit_bias" else "logit_bias")
    for name in ("tool_choice", "function_call"):
        if body.get(name) not in (None, "none"):
            raise unsupported(name, "Tool calling")
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise unsupported("response_format", "A response format other than text")
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise unsupported(name, f"{name} (use repetition_penalty)")
    if not chat:
        if body.get("echo"):
            raise unsupported("echo", "echo (the prompt's own logprobs)")
        if body.get("best_of") not in (None, 1):
            raise unsupported("best_of", "best_of other than 1")
        if body.get("suffix"):
            raise unsupported("suffix", "suffix (insertion)")


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad_field(name, f"`{name}` must be true or false.")
    return value


def _integer(body: dict[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_field(name, f"`{name}` must be an integer, got {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        raise bad_field(name, f"`{name}` must be {bounds}, got {value}.")
    return value


def _real(
    body: dict[str, Any], name: str, low: float, high: float | None, *, above: bool = False
) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_field(name, f"`{name}` must be a number, got {value!r}.")
    value = float(value)
    too_low = value <= low if above else value < low
    if too_low or (high is not None and value > high) or not math.isfinite(value):
        rule = f"{'>' if above else '>='} {low:g}" + (f" and <= {high:g}" if high else "")
        raise bad_field(name, f"`{name}` must be {rule}, got {value:g}.")
    return value


def _too_large() -> ApiError:
    return ApiError(
        413,
        f"The request body is over {MAX_BODY_BYTES // 1024} KiB, the server's limit.",
        code="body_too_large",
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
