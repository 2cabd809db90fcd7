"""The generation loop: prefill, then decode steps; one `TokenStep` per token; every stop here.

Owns: the loop's phases (1. prefill, 2. decode steps), the per-token record (the model's own
distribution: logprob, rank, entropy, top-k alternatives; the sampling distribution's probability),
and all stop conditions: an end-of-turn id (C1, C2), a user stop id or stop string (C3, text held
back while it may still become a stop string, and kept whatever else ends the reply, I5),
max_new_tokens, the context window (prompt plus reply never exceed it, F1, I7), cancellation (a
threading.Event checked between prefill chunks and between decode steps) and errors (reported in
the final record). Knows token ids, not architectures (a Stepper hides them).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from desktop.engine.errors import EngineError
from desktop.engine.events import (
    Alternative,
    FinishReason,
    GenerationDone,
    GenerationSettings,
    Phase,
    PrefillProgress,
    PromptInfo,
    TokenStep,
)
from desktop.engine.forced import ForcedPrefix
from desktop.engine.sampler_chain import Draw, sampler_chain
from desktop.engine.sampling import Sampler, TokenBans, draw_seed, rank_of, row_stats
from desktop.engine.tokenizer import TextTokenizer


class Stepper(Protocol):
    reused: int  # prompt tokens the last prefill took from the prefix cache
    prefill_phase: Literal["prefill", "encode"]  # what reading the prompt is called

    @property
    def position(self) -> int: ...

    def prefill(
        self, prompt_ids: list[int], cancel: threading.Event | None = None
    ) -> np.ndarray | None: ...
    def step(self, token_id: int) -> np.ndarray: ...


@dataclass(frozen=True)
class LoopLimits:
    """eos_ids: end-of-turn ids (never displayed). max_positions: the model's context size
    (prompt positions included for decoder-only models). bans: tokens the model folder forbids,
    -inf before sampling (I8); the records keep the model's own distribution."""

    eos_ids: frozenset[int]
    max_positions: int
    provider: str
    bans: TokenBans = field(default_factory=TokenBans)


class StopStrings:
    """Holds back reply text while it could still grow into a stop string (C3)."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.pending = ""

    def push(self, text: str) -> tuple[str, bool]:
        """Add `text`; returns (text safe to show now, stopped)."""
        buffer = self.pending + text
        hits = [buffer.find(s) for s in self.stops if s in buffer]
        if hits:
            self.pending = ""
            return buffer[: min(hits)], True
        keep = 0
        for stop in self.stops:  # longest buffer suffix that is a proper prefix of a stop string
            for size in range(min(len(stop) - 1, len(buffer)), keep, -1):
                if buffer.endswith(stop[:size]):
                    keep = size
                    break
        self.pending = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return text


def token_record(
    index: int,
    token_id: int,
    text: str,
    logits: np.ndarray,
    sampling_probs: np.ndarray,
    tokenizer: TextTokenizer,
    k: int,
    step_ms: float,
    draw: Draw | None = None,
) -> TokenStep:
    """The record of one token. logits: float32[vocab] raw; sampling_probs: float64[vocab];
    draw: the sampler's draw, for the sampler chain (none recorded without it)."""
    stats = row_stats(logits, k)
    top = tuple(
        Alternative(
            id=int(i),
            token=tokenizer.token_label(int(i)),
            bytes=tokenizer.token_bytes(int(i)),
            logprob=float(lp),
            prob=float(np.exp(lp)),
            sampling_prob=float(sampling_probs[i]),
        )
        for i, lp in zip(stats.top_ids, stats.top_logprobs, strict=True)
    )
    logprob = stats.logprob(logits, token_id)
    return TokenStep(
        index=index,
        id=token_id,
        token=tokenizer.token_label(token_id),
        text=text,
        bytes=tokenizer.token_bytes(token_id),
        logprob=logprob,
        prob=float(np.exp(logprob)),
        sampling_prob=float(sampling_probs[token_id]),
        rank=rank_of(logits, token_id),
        entropy=stats.entropy,
        top=top,
        step_ms=step_ms,
        sampler=sampler_chain(draw, logits, stats.logsumexp) if draw is not None else (),
    )


def generate(
    stepper: Stepper,
    tokenizer: TextTokenizer,
    prompt: PromptInfo,
    settings: GenerationSettings,
    limits: LoopLimits,
    cancel: threading.Event | None = None,
    forced_ids: Sequence[int] = (),
    kept_records: Sequence[TokenStep] = (),
) -> Iterator[PrefillProgress | Phase | TokenStep | GenerationDone]:
    """Yield the prefill's PrefillProgress records (a decoder-only model: one before the first
    prefill run and one after each, see `DecoderStepper.prefill_chunks`), the prefill Phase, one
    TokenStep per reply token, the decode Phase, then exactly one GenerationDone (also on error;
    the prefill Phase only when the prefill ran to its end).

    forced_ids: the reply's first tokens, given rather than sampled (see forced.py); their
    records are marked `forced`, the last one `picked`. max_new_tokens counts the tokens sampled
    after them. A forced end-of-turn id is recorded, then ends the reply ("stop").
    kept_records: the original reply's records of forced_ids[:-1], reused as they are when they
    match (see forced.py); else those records are recomputed.
    Prompt plus reply never exceeds `limits.max_positions` tokens (I7): a 200-token context
    after a 12-token prompt gives at most 188 reply tokens, the last one never fed back; for an
    encoder-decoder model the decoder's own tokens (start token, forced BOS) count as the prompt.
    The reply then ends with "length".
    """
    seed = settings.seed if settings.seed is not None else draw_seed()
    sampler = Sampler(settings, seed)
    forced = ForcedPrefix(forced_ids, kept_records)
    max_tokens = len(forced) + settings.max_new_tokens
    stop_ids = limits.eos_ids | frozenset(settings.stop_ids)
    stops = StopStrings(settings.stop_strings)
    stream = tokenizer.stream()
    room = min(max_tokens, limits.max_positions) + 1  # the reply never outgrows this
    seen = np.empty(len(prompt.prompt_ids) + room, dtype=np.int64)  # (P + N,)
    seen[: len(prompt.prompt_ids)] = prompt.prompt_ids
    n_seen = len(prompt.prompt_ids)
    text_parts: list[str] = []
    # The newest record is held back while its text may still grow into a stop string, so that
    # text held for a stop string that never comes still reaches the reply through a record.
    held: TokenStep | None = None
    finish: FinishReason = "length"
    matched = False  # a stop string ended the reply: the held text was that stop string
    error: str | None = None
    count = 0
    ttft_ms = 0.0
    decode_s = 0.0
    decoded = 0  # tokens whose logits came from a decode step (for the decode rate)
    steps_run = 0
    decode_from: float | None = None  # the end of the prefill (None: it never ended)
    try:
        started = time.perf_counter()
        # phase 1: prefill (chunked); a branch's given tokens but the last run with it
        logits = yield from forced.prefill(stepper, prompt.prompt_ids, cancel)  # progress
        decode_from = time.perf_counter()
        reused = stepper.reused
        yield Phase(
            phase=stepper.prefill_phase,
            tokens=len(prompt.prompt_ids) + max(0, len(forced) - 1) - reused,
            ms=(decode_from - started) * 1000.0,
            reused=reused,
        )
        if logits is None:  # cancelled between prefill chunks
            finish = "cancelled"
        while logits is not None:  # phase 2: decode loop
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            if count >= max_tokens or stepper.position >= limits.max_positions:
                break  # one more token would make prompt + reply longer than the context (I7)
            drawn: Draw | None = None
            copied = forced.copied(count)
            if copied is not None:  # a kept token of the reply being branched: its own record
                token_id, probs = copied.id, None
            elif forced.forces(count):  # a branch's given prefix: recorded, not sampled
                token_id, probs = forced.choose(count, logits, seen[:n_seen], settings)
            else:
                allowed = limits.bans.apply(logits, seen[:n_seen], count)  # (vocab,) bans at -inf
                drawn = sampler.draw(allowed, seen[:n_seen])
                token_id, probs = drawn.token, drawn.probs
                if token_id in stop_ids:
                    finish = "stop"
                    break
            if token_id in stop_ids:  # a forced end-of-turn id: no text; held text is released
                shown, stopped = stops.flush(), False
            else:
                shown, stopped = stops.push(stream.feed(token_id))
            now = time.perf_counter()
            step_ms = (now - started) * 1000.0
            if count == 0:
                ttft_ms = step_ms
            elif count >= len(forced):  # its logits came from a decode step
                decode_s += now - started
                decoded += 1
            text_parts.append(shown)
            if held is not None:
                yield held
            if copied is not None:
                # the original's record, as of this run: nothing was drawn (no sampler chain)
                held = dataclasses.replace(
                    copied, index=count, text=shown, step_ms=step_ms, sampler=()
                )
            else:
                assert probs is not None  # drawn or chosen above
                held = token_record(
                    count,
                    token_id,
                    shown,
                    logits,
                    probs,
                    tokenizer,
                    settings.top_logprobs,
                    step_ms,
                    drawn,
                )
            held = forced.mark(held)
            if not stops.pending and not stream.pending:  # I3: a cut character joins the last
                yield held
                held = None
            count += 1
            seen[n_seen] = token_id
            n_seen += 1
            if stopped:
                finish, matched = "stop", True
                break
            if token_id in stop_ids:  # a forced end-of-turn id ends the reply
                finish = "stop"
                stream.finish()  # what follows a stop string is dropped, a cut character too
                break
            if stepper.position + 1 >= limits.max_positions or count >= max_tokens:
                break  # prompt + reply fill the context: feeding this token back would be wasted
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            started = time.perf_counter()
            next_logits = forced.next_logits(count - 1)
            if next_logits is None:
                logits = stepper.step(token_id)
                steps_run += 1
            else:  # a forced token's logits came with the prefill
                logits = next_logits
    except EngineError as err:
        finish, error = "error", str(err)
    if not matched:  # an end token, length, cancel or error: held text was no stop string (I5)
        tail = stops.flush()
        text_parts.append(tail)
        if held is not None:
            held = dataclasses.replace(held, text=held.text + tail)
    cut = stream.finish()  # I3: a reply cut inside a UTF-8 character ends with one U+FFFD
    if cut and held is not None:
        text_parts.append(cut)
        held = dataclasses.replace(held, text=held.text + cut)
    if held is not None:
        yield held
    decode_ms = (time.perf_counter() - decode_from) * 1000.0 if decode_from is not None else 0.0
    yield Phase(
        phase="decode",
        tokens=steps_run,
        ms=decode_ms,
        tokens_per_s=steps_run * 1000.0 / decode_ms if steps_run and decode_ms > 0 else 0.0,
    )
    yield GenerationDone(
        finish_reason=finish,
        text="".join(text_parts),
        prompt_tokens=len(prompt.prompt_ids),
        completion_tokens=count,
        ttft_ms=ttft_ms,
        decode_tokens_per_s=decoded / decode_s if decoded and decode_s > 0 else 0.0,
        provider=limits.provider,
        seed=seed,
        dropped_messages=prompt.dropped_messages,
        error=error,
        settings=settings,
    )
