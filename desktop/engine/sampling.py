"""Pure-numpy sampling and the per-token statistics of a logits row.

Owns: turning one row of raw logits (`float32[vocab]`) into the next token id, the distribution it
was sampled from, and the model's own distribution summary (logprob, rank, entropy, top-k).
Knows nothing about models, tokenizers or sessions.

The processors apply in transformers' LogitsProcessorList order (see `GenerationSettings`):
repetition penalty, temperature, top-k, top-p, min-p, then a draw (argmax when temperature == 0).
Sources: repetition penalty from Keskar et al. 2019 (CTRL) as transformers implements it; top-p from
Holtzman et al. 2019; min-p from Nguyen et al. 2024.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
from numpy.random import default_rng  # imported here: numpy loads numpy.random lazily (~40 ms)

from desktop.engine.errors import SamplingError
from desktop.engine.events import MAX_SEED, GenerationSettings, StageName
from desktop.engine.sampler_chain import Draw, Kept, draw_rank, kept_ids


def apply_repetition_penalty(
    logits: np.ndarray, seen_ids: np.ndarray, penalty: float
) -> np.ndarray:
    """Penalize tokens already seen: positive logits divided by `penalty`, negative multiplied.

    logits: float32[vocab] (not modified). seen_ids: int64[n] (duplicates allowed).
    Returns a new float32[vocab]. Case E1: [2, -2, 0.5], seen {0, 1}, penalty 2 -> [1, -4, 0.5].
    """
    out = np.array(logits, dtype=np.float32, copy=True)  # (vocab,)
    if penalty == 1.0 or len(seen_ids) == 0:
        return out
    ids = np.unique(seen_ids)  # (n_unique,)
    picked = out[ids]  # (n_unique,)
    out[ids] = np.where(picked > 0, picked / penalty, picked * penalty)
    return out


def _clean(logits: np.ndarray) -> np.ndarray:
    """NaN -> -inf; raise SamplingError when no finite logit remains (case E4)."""
    row = np.where(np.isnan(logits), -np.inf, logits).astype(np.float32, copy=False)  # (vocab,)
    if not np.isfinite(row).any():
        raise SamplingError(
            "The model produced no usable scores for the next token (all -inf or NaN); "
            "the reply stops here."
        )
    return row


def sampling_distribution(
    logits: np.ndarray,
    settings: GenerationSettings,
    trace: list[tuple[StageName, Kept]] | None = None,
) -> np.ndarray:
    """The distribution a token is drawn from, after temperature, top-k, top-p and min-p.

    logits: float32[vocab], already repetition-penalized. Returns float64[vocab] summing to 1
    (float64, so that the probabilities of a few kept tokens do not add up past 1 by float32
    rounding), 0.0 for every filtered token. Temperature 0 (greedy) gives a one-hot row at the
    argmax (E2; ties: the lower id). top-k keeps exactly k tokens, ties at the k-th score broken
    by the lower id (I6, as vLLM after PR #50979), so a seed reproduces the reply. A top-p or
    min-p that would remove everything (top_p 0 included) keeps the most likely token (E3).
    Raises SamplingError when no logit is finite (E4).
    trace: when given, each stage applied appends (stage, ids it kept or None for every finite
    token), for the sampler chain (sampler_chain.py).
    """
    row = _clean(logits)  # (vocab,)
    probs = np.zeros(row.size, dtype=np.float64)  # (vocab,)
    if settings.temperature <= 0.0:
        probs[int(np.argmax(row))] = 1.0
        return probs
    # shift before scaling: (logit - max) / T is <= 0, so even a tiny T (1e-38) cannot overflow
    # to inf and NaN (it underflows to -inf, which is probability 0: greedy in the limit)
    scaled = (row.astype(np.float64) - row.max()) / settings.temperature  # (vocab,)
    if trace is not None:
        trace.append(("temperature", None))
    if 0 < settings.top_k < scaled.size:  # exactly k tokens; a tie at the k-th goes to lower ids
        kept = np.full(scaled.size, -np.inf)  # (vocab,)
        top = top_k_ids(scaled, settings.top_k)  # (k,)
        kept[top] = scaled[top]
        scaled = kept
        if trace is not None:
            trace.append(("top_k", np.sort(top)))  # (k,)
    shifted = np.exp(scaled - scaled.max())  # (vocab,)
    probs = shifted / shifted.sum()  # (vocab,)
    if settings.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")  # (vocab,)
        cumulative = np.cumsum(probs[order])  # (vocab,)
        # keep the smallest prefix whose mass reaches top_p; always at least the first token
        keep_count = max(1, int(np.searchsorted(cumulative, settings.top_p, side="left")) + 1)
        mask = np.zeros(probs.size, dtype=bool)
        mask[order[:keep_count]] = True
        probs = np.where(mask, probs, 0.0)
        if trace is not None:
            kept = order[:keep_count]  # (keep_count,)
            trace.append(("top_p", kept[probs[kept] > 0.0]))  # less after a top-k
    if settings.min_p > 0.0:
        probs = np.where(probs >= settings.min_p * probs.max(), probs, 0.0)
        if trace is not None:
            trace.append(("min_p", kept_ids(probs, trace)))
    return probs / probs.sum()


@dataclass
class Sampler:
    """Draws token ids with one seeded generator, so a seed reproduces a reply exactly (E5)."""

    settings: GenerationSettings
    seed: int

    def __post_init__(self) -> None:
        self._rng = default_rng(self.seed)

    def sample(self, logits: np.ndarray, seen_ids: np.ndarray) -> tuple[int, np.ndarray]:
        """Pick the next token. logits: float32[vocab]; seen_ids: int64[n] (prompt + reply so far).

        Returns (token_id, float64[vocab] sampling distribution). Raises SamplingError (E4).
        """
        drawn = self.draw(logits, seen_ids)
        return drawn.token, drawn.probs

    def draw(self, logits: np.ndarray, seen_ids: np.ndarray) -> Draw:
        """`sample`, with the trace of what each stage kept (for `sampler_chain`).

        logits: float32[vocab]; seen_ids: int64[n]. Raises SamplingError (E4).
        """
        trace: list[tuple[StageName, Kept]] = []
        token, probs = self._pick(logits, seen_ids, trace)
        greedy = self.settings.temperature <= 0.0  # the argmax: first by definition
        rank = 0 if greedy else draw_rank(probs, token, tuple(trace))
        return Draw(token, probs, tuple(trace), rank)

    def _pick(
        self, logits: np.ndarray, seen_ids: np.ndarray, trace: list[tuple[StageName, Kept]]
    ) -> tuple[int, np.ndarray]:
        if self.settings.temperature <= 0.0 and self.settings.repetition_penalty == 1.0:
            token = int(np.argmax(logits))  # greedy fast path: no copy of the row
            if not np.isfinite(logits[token]):
                _clean(logits)  # raises SamplingError when nothing is finite (E4)
                token = int(np.argmax(np.nan_to_num(logits, nan=-np.inf)))
            probs = np.zeros(logits.size, dtype=np.float64)  # (vocab,) one-hot
            probs[token] = 1.0
            return token, probs
        penalized = apply_repetition_penalty(logits, seen_ids, self.settings.repetition_penalty)
        if self.settings.repetition_penalty != 1.0:
            trace.append(("repetition_penalty", None))
        probs = sampling_distribution(penalized, self.settings, trace)  # (vocab,)
        if self.settings.temperature <= 0.0:
            return int(np.argmax(probs)), probs
        cdf = np.cumsum(probs, dtype=np.float64)  # (vocab,)
        draw = self._rng.random() * cdf[-1]
        token = int(np.searchsorted(cdf, draw, side="right"))
        token = min(token, probs.size - 1)
        while probs[token] == 0.0:  # float edge: never land on a filtered token
            token -= 1
        return token, probs


def draw_seed() -> int:
    """A fresh random seed in 0..MAX_SEED (recorded with the reply so it can be reproduced)."""
    return secrets.randbelow(MAX_SEED + 1)


@dataclass(frozen=True)
class RowStats:
    """The model's own distribution over one row: softmax of the raw logits.

    top_ids: int64[k] most likely first. top_logprobs: float64[k]. entropy in nats.
    """

    logsumexp: float
    entropy: float
    top_ids: np.ndarray
    top_logprobs: np.ndarray

    def logprob(self, logits: np.ndarray, token_id: int) -> float:
        return float(logits[token_id]) - self.logsumexp


def row_stats(logits: np.ndarray, k: int) -> RowStats:
    """Softmax summary of one logits row in O(vocab): one exp pass, one argpartition.

    logits: float32[vocab] raw (NaN is treated as -inf). k: number of alternatives (0 allowed).
    Entropy H = log Z - sum(p * x) with x the max-shifted logits, in nats. Measured at about
    0.1 ms for a 49,152-token row (tests/benchmarks/decode.py prints it).
    """
    row = logits
    peak = row.max()  # () NaN when any logit is NaN
    all_finite = bool(np.isfinite(peak) and np.isfinite(row.min()))
    if not all_finite:
        row = np.where(np.isfinite(row), row, -np.inf).astype(np.float32)  # (vocab,)
        peak = row.max()
    shifted = row - peak  # (vocab,) <= 0
    weights = np.exp(shifted)  # (vocab,)
    total = float(weights.sum())  # numpy's pairwise float32 sum: error ~1e-7 relative
    log_total = float(np.log(total))
    if not all_finite:
        shifted[~np.isfinite(shifted)] = 0.0  # -inf * 0 weight contributes 0, not NaN
    entropy = max(0.0, log_total - float(np.dot(weights, shifted)) / total)
    logsumexp = float(peak) + log_total
    top_ids = top_k_ids(row, k)  # (k,)
    top_logprobs = row[top_ids].astype(np.float64) - logsumexp  # (k,) as `logprob` computes it
    return RowStats(logsumexp, entropy, top_ids.astype(np.int64), top_logprobs)


def top_k_ids(row: np.ndarray, k: int, block: int = 512) -> np.ndarray:
    """Ids of the k largest values of float32[vocab], largest first (ties: lower id first).

    Block-max prefilter instead of one argpartition over the whole row (1.2 ms for 49,152
    values here): the k-th largest of the blocks' maxima T is reached by at least k values
    (each of those blocks holds one), and every top-k value is >= T, so sorting the few
    values >= T is exact.
    """
    k = min(k, row.size)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    n_blocks = row.size // block
    if n_blocks < 2 * k:
        maxima = row  # small rows: the k-th largest value itself
    else:
        maxima = row[: n_blocks * block].reshape(n_blocks, block).max(axis=1)  # (n_blocks,)
        if n_blocks * block < row.size:
            maxima = np.append(maxima, row[n_blocks * block :].max())
    threshold = np.partition(maxima, maxima.size - k)[maxima.size - k]
    candidates = np.flatnonzero(row >= threshold)  # (>= k,)
    order = np.lexsort((candidates, -row[candidates]))[:k]
    return candidates[order].astype(np.int64)


def rank_of(logits: np.ndarray, token_id: int) -> int:
    """0-based rank of `token_id` in float32[vocab] logits (ties count in its favour)."""
    return int(np.count_nonzero(logits > logits[token_id]))


@dataclass(frozen=True)
class TokenBans:
    """Tokens a model folder forbids (generation_config.json), as transformers' logits processors
    (NoBadWordsLogitsProcessor, SuppressTokensLogitsProcessor, SuppressTokensAtBeginLogits-
    Processor) apply them: their logits become -inf before sampling (case I8).

    always: ids never generated (suppress_tokens, one-token bad_words_ids, and an
    encoder-decoder model's pad token). first: ids never generated as the reply's first token
    (begin_suppress_tokens). sequences: multi-token bad_words_ids; the last id is banned when the
    ids before it end the sequence so far. Ids outside the vocabulary are ignored.
    """

    always: tuple[int, ...] = ()
    first: tuple[int, ...] = ()
    sequences: tuple[tuple[int, ...], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.always or self.first or self.sequences)

    def apply(self, logits: np.ndarray, seen_ids: np.ndarray, index: int) -> np.ndarray:
        """logits: float32[vocab] (not modified); seen_ids: int64[n] (prompt + reply so far);
        index: the 0-based reply position of the token about to be drawn. Returns `logits`
        itself when nothing is banned here, else a float32[vocab] copy with banned ids at -inf."""
        banned = list(self.always)
        if index == 0:
            banned += self.first
        for words in self.sequences:
            head = words[:-1]
            if len(seen_ids) >= len(head) and tuple(seen_ids[len(seen_ids) - len(head) :]) == head:
                banned.append(words[-1])
        ids = [i for i in banned if 0 <= i < logits.size]
        if not ids:
            return logits
        out = np.array(logits, dtype=np.float32, copy=True)  # (vocab,)
        out[ids] = -np.inf
        return out
