"""The one place that turns the engine's records into OpenAI-shaped JSON (CLI, export, server).

A token is one entry of OpenAI's Chat Completions `choices[].logprobs.content[]`: {token, logprob,
bytes (a list of ints), top_logprobs: [{token, logprob, bytes}]}, followed by Tokenglass's own
fields (id, prob, rank, entropy in nats, sampling_prob, text, index, step_ms, and the sampler
chain as applied: sampler: [{stage, candidates, mass}, ..., {stage: "draw", candidates: 1, mass,
rank}]; id, prob and sampling_prob on each alternative). A pipeline phase is {phase, ms, tokens,
reused} (plus ids for "tokenize", tokens_per_s for "decode"). Every number that is not finite
(a -inf logprob, a NaN) is written as null, here and nowhere else, so the output is strict JSON
(RFC 8259): `dumps` refuses NaN and Infinity after cleaning.
Does not know: where the JSON goes (terminal, file, HTTP), SQLite, Qt.
"""

from __future__ import annotations

import dataclasses
import json
import math
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


def token_json(step: TokenStep) -> dict:
    """One entry of `logprobs.content[]` (OpenAI's fields first, then ours)."""
    return {
        "token": step.token,
        "logprob": number(step.logprob),
        "bytes": list(step.bytes),
        "top_logprobs": [alternative_json(alt) for alt in step.top],
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


def settings_json(settings: GenerationSettings) -> dict:
    """GenerationSettings as a dict (tuples as lists, non-finite floats as null)."""
    return clean(dataclasses.asdict(settings))


def done_json(done: GenerationDone) -> dict:
    """A GenerationDone's fields; `seed` is null for a greedy reply, which draws nothing
    (`GenerationDone.seed_used`)."""
    fields = clean(dataclasses.asdict(done))
    fields["seed"] = done.seed_used
    return fields
