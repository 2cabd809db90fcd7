"""The one place that turns the engine's records into OpenAI-shaped JSON (CLI, export, server).

A token is one entry of OpenAI's Chat Completions `choices[].logprobs.content[]`: {token, logprob,
bytes (a list of ints), top_logprobs: [{token, logprob, bytes}]}, followed by Tokenglass's own
fields (id, prob, rank, entropy in nats, sampling_prob, text, index, step_ms, forced / picked
when true, and the sampler chain as applied: sampler: [{stage, candidates, mass}, ..., {stage:
"draw", candidates: 1, mass, rank}]; id, prob and sampling_prob on each alternative). A pipeline
phase is {phase, ms, tokens, reused} (plus ids for "tokenize", tokens_per_s for "decode"). Every
number that is not finite (a -inf logprob, a NaN) is written as null, here and nowhere else, so
the output is strict JSON (RFC 8259): `dumps` refuses NaN and Infinity after cleaning.
The server's response bodies (Chat Completions and the legacy Completions, whole or as stream
chunks) are built here too, from the same records (see "The server's shapes" below).
Does not know: where the JSON goes (terminal, file, HTTP), SQLite, Qt.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

from desktop.engine.events import (
    Alternative,
    GenerationDone,
    GenerationSettings,
    Phase,
    SamplerStage,
    TokenStep,
)


def number(value: float | None) -> float | None:
    """A float for strict JSON: None, NaN and ±inf become null."""
    return value if value is not None and math.isfinite(value) else None


def clean(value: Any) -> Any:
    """`value` with every non-finite float (at any depth) made None and tuples made lists."""
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Strict JSON text of `value` (non-finite floats as null, UTF-8 characters kept)."""
    return json.dumps(clean(value), ensure_ascii=False, indent=indent, allow_nan=False)


def alternative_json(alt: Alternative) -> dict:
    """One entry of `top_logprobs` (OpenAI's fields first, then ours)."""
    return {
        "token": alt.token,
        "logprob": number(alt.logprob),
        "bytes": list(alt.bytes),
        "id": alt.id,
        "prob": number(alt.prob),
        "sampling_prob": number(alt.sampling_prob),
    }


def sampler_stage_json(stage: SamplerStage) -> dict:
    """One stage of a token's sampler chain; "rank" only on the draw."""
    out: dict = {"stage": stage.stage, "candidates": stage.candidates, "mass": number(stage.mass)}
    if stage.rank is not None:
        out["rank"] = stage.rank
    return out


def phase_json(phase: Phase) -> dict:
    """A pipeline phase: {phase, ms, tokens, reused}; "ids" on tokenize, "tokens_per_s" on
    decode (see `Phase` for what each counts)."""
    out: dict = {
        "phase": phase.phase,
        "ms": number(phase.ms),
        "tokens": phase.tokens,
        "reused": phase.reused,
    }
    if phase.phase == "tokenize":
        out["ids"] = list(phase.ids)
    if phase.phase == "decode":
        out["tokens_per_s"] = number(phase.tokens_per_s)
    return out


def token_json(step: TokenStep, top_logprobs: int | None = None) -> dict:
    """One entry of `logprobs.content[]` (OpenAI's fields first, then ours). top_logprobs: how
    many of the step's alternatives to give (None: all it carries). A token given rather than
    sampled (a branch from a token) also has `"forced": true`, and the alternative a person picked
    `"picked": true`; both are left out when false, so an ordinary reply's entries keep their
    shape."""
    top = step.top if top_logprobs is None else step.top[:top_logprobs]
    entry = {
        "token": step.token,
        "logprob": number(step.logprob),
        "bytes": list(step.bytes),
        "top_logprobs": [alternative_json(alt) for alt in top],
        "id": step.id,
        "prob": number(step.prob),
        "rank": step.rank,
        "entropy": number(step.entropy),
        "sampling_prob": number(step.sampling_prob),
        "text": step.text,
        "index": step.index,
        "step_ms": number(step.step_ms),
        "sampler": [sampler_stage_json(stage) for stage in step.sampler],
    }
    if step.forced:
        entry["forced"] = True
    if step.picked:
        entry["picked"] = True
    return entry


def settings_json(settings: GenerationSettings) -> dict:
    """GenerationSettings as a dict (tuples as lists, non-finite floats as null)."""
    return clean(dataclasses.asdict(settings))


def done_json(done: GenerationDone) -> dict:
    """A GenerationDone's fields; `seed` is null for a greedy reply, which draws nothing
    (`GenerationDone.seed_used`)."""
    fields = clean(dataclasses.asdict(done))
    fields["seed"] = done.seed_used
    return fields


# -- The server's shapes -----------------------------------------------------------------------
# OpenAI's API reference: Chat Completions (`chat.completion`, `chat.completion.chunk`) and the
# legacy Completions (`text_completion`). Every body carries `id`, `object`, `created` (Unix
# seconds) and `model`; `tokenglass` is our own field (seed, provider, speed), which OpenAI's
# clients ignore.


def finish_reason(done: GenerationDone) -> str:
    """OpenAI's finish_reason: "length" for a reply cut at max_tokens or the context window,
    "stop" for an end-of-turn token, a stop string, or a cancel (the client left)."""
    return "length" if done.finish_reason == "length" else "stop"


def usage_json(done: GenerationDone) -> dict:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


def tokenglass_json(done: GenerationDone) -> dict:
    """Our own fields about a reply: the seed that reproduces it (null for greedy), the execution
    provider, time to first token (ms), decode speed (tokens/s), turns left out to fit."""
    return clean(
        {
            "seed": done.seed_used,
            "provider": done.provider,
            "ttft_ms": done.ttft_ms,
            "decode_tokens_per_s": done.decode_tokens_per_s,
            "dropped_messages": done.dropped_messages,
        }
    )


def chat_logprobs_json(steps: Sequence[TokenStep], top_logprobs: int) -> dict:
    """`choices[].logprobs` of a chat reply (or of one stream chunk): one entry per token, each
    with its `top_logprobs` most likely alternatives, most likely first."""
    return {"content": [token_json(s, top_logprobs) for s in steps], "refusal": None}


def chat_completion_json(
    ident: str,
    created: int,
    model: str,
    steps: Sequence[TokenStep],
    done: GenerationDone,
    top_logprobs: int | None,
) -> dict:
    """A whole `chat.completion`. top_logprobs: None when the request asked for no logprobs."""
    logprobs = None if top_logprobs is None else chat_logprobs_json(steps, top_logprobs)
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": done.text, "refusal": None},
                "logprobs": logprobs,
                "finish_reason": finish_reason(done),
            }
        ],
        "usage": usage_json(done),
        "system_fingerprint": None,
        "tokenglass": tokenglass_json(done),
    }


def chat_chunk_json(
    ident: str,
    created: int,
    model: str,
    delta: dict,
    logprobs: dict | None = None,
    done: GenerationDone | None = None,
    include_usage: bool = False,
) -> dict:
    """One `chat.completion.chunk` with one choice: the first carries `delta` {"role":
    "assistant", "content": ""}, each token's {"content": its text} with its `logprobs`
    (chat_logprobs_json of that one step), the last {} with `done`'s finish_reason.
    include_usage: the stream was asked with it, so this chunk has `"usage": null` (only the
    extra last chunk, usage_chunk_json, carries the usage)."""
    chunk = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": None if done is None else finish_reason(done),
            }
        ],
        "system_fingerprint": None,
    }
    if done is not None:
        chunk["tokenglass"] = tokenglass_json(done)
    if include_usage:
        chunk["usage"] = None
    return chunk


def usage_chunk_json(ident: str, created: int, model: str, done: GenerationDone, kind: str) -> dict:
    """The extra last chunk of a stream asked with `stream_options.include_usage`: no choices,
    the usage. kind: "chat.completion.chunk" or "text_completion"."""
    return {
        "id": ident,
        "object": kind,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_json(done),
        "system_fingerprint": None,
    }


def legacy_logprobs_json(steps: Sequence[TokenStep], count: int, offset: int = 0) -> dict:
    """The legacy Completions `logprobs`: `tokens`, `token_logprobs`, `top_logprobs` (one dict
    token -> logprob per token: its `count` most likely alternatives, plus the chosen token when
    it is not among them, so up to count + 1 entries, as OpenAI documents) and `text_offset`
    (each token's first character in the text, counted from `offset`: OpenAI counts from the
    start of the prompt, so the server passes the prompt's length in characters)."""
    tokens, logprobs, tops, offsets = [], [], [], []
    position = offset
    for step in steps:
        tokens.append(step.token)
        logprobs.append(number(step.logprob))
        top: dict[str, float | None] = {}
        for alt in step.top[:count]:  # a label written twice keeps its most likely entry
            top.setdefault(alt.token, number(alt.logprob))
        top.setdefault(step.token, number(step.logprob))
        tops.append(top)
        offsets.append(position)
        position += len(step.text)
    return {
        "tokens": tokens,
        "token_logprobs": logprobs,
        "top_logprobs": tops,
        "text_offset": offsets,
    }


def completion_json(
    ident: str,
    created: int,
    model: str,
    text: str,
    logprobs: dict | None,
    done: GenerationDone | None,
    stream: bool = False,
) -> dict:
    """A `text_completion` with one choice: the whole reply (with `done`; it then carries the
    usage), or one stream chunk (text: that token's text; `done` on the last chunk only, which
    has no usage: that is usage_chunk_json's)."""
    body = {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": None if done is None else finish_reason(done),
            }
        ],
        "system_fingerprint": None,
    }
    if done is not None:
        body["tokenglass"] = tokenglass_json(done)
        if not stream:
            body["usage"] = usage_json(done)
    return body


def model_json(name: str, created: int) -> dict:
    """One entry of GET /v1/models (`object: "model"`); created: Unix seconds."""
    return {"id": name, "object": "model", "created": created, "owned_by": "tokenglass"}
