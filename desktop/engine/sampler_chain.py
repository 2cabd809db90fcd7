"""The sampler chain of one token: how many candidates each sampling stage left, and their mass.

Owns: the `Draw` a `Sampler` returns (the token, the distribution it came from, and the trace of
what each stage kept) and `sampler_chain`, which turns that trace into `SamplerStage` records once
the model's own log-normalizer is known (the per-token record computes it anyway).
Does not know: how the stages filter (sampling.py does that and notes what it kept), models, Qt.

Cost: the stages note only what they already hold (the ids a top-p sort kept, a mask already
made); counting and the mass of a small kept set are O(kept). A stage that keeps every finite
token costs one count over the row per token. tests/benchmarks/decode.py measures it with the
per-token record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from desktop.engine.events import SamplerStage, StageName

Kept = np.ndarray | None
"""int64[n] ids a stage kept (in any order), or None: every token with a finite logit."""


@dataclass(frozen=True)
class Draw:
    """One draw of the sampler. probs: float64[vocab], the distribution the token was drawn
    from (one-hot for greedy). trace: (stage, kept) in the order applied, the draw excluded.
    rank: 0-based place of `token` among the last stage's candidates under `probs`."""

    token: int
    probs: np.ndarray
    trace: tuple[tuple[StageName, Kept], ...]
    rank: int


def kept_ids(probs: np.ndarray, trace: list[tuple[StageName, Kept]]) -> np.ndarray:
    """int64[n]: the ids with probability > 0 in float64[vocab] `probs`, looked for only among
    the ids the last noted stage kept when it noted any (O(kept) instead of O(vocab))."""
    previous = next((kept for _, kept in reversed(trace) if kept is not None), None)
    if previous is None:
        return np.flatnonzero(probs)  # (n,)
    return previous[probs[previous] > 0.0]  # (n,)


def draw_rank(probs: np.ndarray, token: int, trace: tuple[tuple[StageName, Kept], ...]) -> int:
    """0-based rank of `token` under float64[vocab] `probs` among the last stage's candidates
    (ties count in its favour)."""
    previous = next((kept for _, kept in reversed(trace) if kept is not None), None)
    pool = probs if previous is None else probs[previous]
    return int(np.count_nonzero(pool > probs[token]))


def sampler_chain(draw: Draw, logits: np.ndarray, logsumexp: float) -> tuple[SamplerStage, ...]:
    """The chain as applied: one `SamplerStage` per noted stage, then the draw.

    logits: float32[vocab], the model's raw scores; logsumexp: their log-normalizer (so that
    exp(logit - logsumexp) is the model's own probability). A stage that kept every finite token
    holds mass 1.0. The draw keeps 1 candidate, the drawn token, with its model probability.
    """
    stages = []
    n_finite: int | None = None
    for stage, kept in draw.trace:
        if kept is None:
            if n_finite is None:
                n_finite = int(np.count_nonzero(np.isfinite(logits)))
            stages.append(SamplerStage(stage, n_finite, 1.0))
        else:
            mass = float(np.exp(logits[kept].astype(np.float64) - logsumexp).sum())  # (n,) summed
            stages.append(SamplerStage(stage, int(kept.size), min(1.0, mass)))
    drawn = float(np.exp(float(logits[draw.token]) - logsumexp))
    stages.append(SamplerStage("draw", 1, min(1.0, drawn), draw.rank))
    return tuple(stages)
