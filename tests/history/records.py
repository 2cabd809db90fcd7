"""Hand-built engine records for history tests (the engine is not needed to store them).

The values are chosen to break a lossy store: -0.0, a subnormal, 0.1 + 0.2, a -inf logprob, bytes
of half a UTF-8 character, empty bytes, a NUL and an emoji in token text, a seed above 2**63.
"""

from __future__ import annotations

import dataclasses
import math

from desktop.engine.events import (
    Alternative,
    GenerationDone,
    GenerationSettings,
    Phase,
    PromptInfo,
    SamplerStage,
    TokenStep,
)

TRICKY_FLOATS = (-0.0, 5e-324, 0.1 + 0.2, 1.0 / 3.0, 1e-300, 2.0**60, -1e-12)


def make_alternatives(step: int, count: int = 4) -> tuple[Alternative, ...]:
    alts = []
    for k in range(count):
        prob = 0.5 ** (k + 1) + step * 1e-9
        alts.append(
            Alternative(
                id=1000 * step + k,
                token=["▁the", "Ġ🤗", "<F0 9F>", "a\x00b"][k % 4] + str(step),
                bytes=[b" the", "\U0001f917".encode(), b"\xf0\x9f", b""][k % 4],
                logprob=math.log(prob) if k < count - 1 else -math.inf,
                prob=prob if k < count - 1 else 0.0,
                sampling_prob=TRICKY_FLOATS[(step + k) % len(TRICKY_FLOATS)],
            )
        )
    return tuple(alts)


def make_steps(count: int, top: int = 4) -> tuple[TokenStep, ...]:
    steps = []
    for i in range(count):
        alts = make_alternatives(i, top)
        chosen = alts[i % top] if top else None
        steps.append(
            TokenStep(
                index=i,
                id=chosen.id if chosen else i,
                token=chosen.token if chosen else f"t{i}",
                text="" if i % 5 == 3 else f" w{i}",
                bytes=chosen.bytes if chosen else b"\xff",
                logprob=chosen.logprob if chosen else -0.5,
                prob=chosen.prob if chosen else 0.6065306597126334,
                sampling_prob=0.1 + 0.2 if i % 2 else 1.0,
                rank=i % top if top else 0,
                entropy=-0.0 if i == 0 else 1.0 / (i + 3),
                top=alts,
                step_ms=12.345678901234567 + i,
                sampler=make_chain(i),
            )
        )
    return tuple(steps)


def make_settings() -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=64,
        temperature=0.1 + 0.2,
        top_k=40,
        top_p=0.95,
        min_p=0.05,
        repetition_penalty=1.1,
        seed=None,
        top_logprobs=4,
        stop_strings=("\n\n", "User:"),
        stop_ids=(2, 106),
    )


def make_done(steps: tuple[TokenStep, ...], finish_reason: str = "stop") -> GenerationDone:
    return GenerationDone(
        finish_reason=finish_reason,  # type: ignore[arg-type]
        text="".join(s.text for s in steps),
        prompt_tokens=17,
        completion_tokens=len(steps),
        ttft_ms=123.456789,
        decode_tokens_per_s=1.0 / 7.0,
        provider="CPUExecutionProvider",
        seed=2**64 - 1,
        dropped_messages=1,
        error=None,
        settings=make_settings(),
    )


def make_prompt() -> PromptInfo:
    return PromptInfo(
        prompt_text="<|im_start|>user\nHi 😀<|im_end|>\n<|im_start|>assistant\n",
        prompt_ids=(1, 9690, 198, 49152, 2),
        dropped_messages=1,
        context_size=8192,
    )


def exact(record: object) -> object:
    """`record` as nested tuples with every float as float.hex(), so -0.0 != 0.0 and each bit
    counts."""

    def walk(value: object) -> object:
        if isinstance(value, float):
            return value.hex()
        if isinstance(value, tuple | list):
            return tuple(walk(v) for v in value)
        if isinstance(value, dict):
            return tuple((k, walk(v)) for k, v in value.items())
        return value

    return walk(dataclasses.astuple(record)) if dataclasses.is_dataclass(record) else walk(record)


def make_chain(step: int) -> tuple[SamplerStage, ...]:
    """A sampler chain with tricky masses (greedy on every third step: the draw alone)."""
    if step % 3 == 2:
        return (SamplerStage("draw", 1, 0.1 + 0.2, 0),)
    return (
        SamplerStage("repetition_penalty", 49152, 1.0),
        SamplerStage("temperature", 49152, 1.0),
        SamplerStage("top_k", 40, 1.0 - 1e-12),
        SamplerStage("top_p", 12, 1.0 / 3.0),
        SamplerStage("min_p", 5, 5e-324),
        SamplerStage("draw", 1, -0.0 if step == 0 else 2.0**-60, step % 5),
    )


def make_phases() -> tuple[Phase, ...]:
    return (
        Phase("tokenize", 5, 0.1 + 0.2, ids=(1, 9690, 198, 49152, 2)),
        Phase("prefill", 2, 12.345678901234567, reused=3),
        Phase("decode", 39, 400.0 / 3.0, tokens_per_s=39 * 1000 / (400.0 / 3.0)),
    )
