"""A forced reply prefix: the first tokens of a reply are given instead of sampled.

Owns: running a branch's prefix (the original reply's tokens before the branch point, then the
alternative a person picked) through the same loop as sampled tokens, as nanochat's engine runs
forced tokens: every forced token gets the same record as a sampled one (the model's own
distribution at its position, its rank, the probability the sampler would have given it),
marked `forced`, and the last one `picked`. Knows token ids and logits rows, not architectures.

Where the kept tokens' records come from: when the model has just written the reply being
branched (the window's and the CLI's usual case: the KV cache holds that chat), its records are
reused as they are (`kept`: the issue's "tokens before the branch point are the original's
records"), and only the picked token needs the model: one prefill run of the prompt and the kept
tokens after what the cache holds, whose last position gives the picked token's distribution.
Otherwise (another reply, a fresh model) they are recomputed in the loop, as a sampled token's
record is: the prompt's last token and the prefix go through the model in one run whose every
position's logits are kept (`DecoderStepper.prefill_chunks`; one token per run on a graph that
returns the last position only), or one decode step each for an encoder-decoder model. Recomputed
records equal the original's up to float summation order: tests check ids, ranks and top ids
exactly and logprobs within 1e-4; `step_ms` differs, and `sampling_prob` follows this run's
settings.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator, Sequence
from typing import Protocol

import numpy as np

from desktop.engine.events import GenerationSettings, PrefillProgress, TokenStep
from desktop.engine.sampling import apply_repetition_penalty, sampling_distribution


class _Stepper(Protocol):
    def prefill(
        self, prompt_ids: list[int], cancel: threading.Event | None = None
    ) -> np.ndarray | None: ...
    def step(self, token_id: int) -> np.ndarray: ...


class ForcedPrefix:
    """The given first tokens of one reply (empty: an ordinary reply, every call a no-op).

    ids: the forced token ids, the picked alternative last. After `prefill`, the logits for
    reply token j (j < len(ids)) are known without a decode step; the KV cache then holds the
    prompt and every forced id but the last, which the loop steps as it steps a sampled token.
    """

    def __init__(self, ids: Sequence[int], kept: Sequence[TokenStep] = ()) -> None:
        """kept: the original reply's records of ids[:-1] (used only when they are exactly those
        ids, and only for a decoder-only stepper); else the records are recomputed."""
        self.ids = tuple(int(i) for i in ids)
        usable = len(self.ids) > 1 and tuple(r.id for r in kept) == self.ids[:-1]
        self.kept: tuple[TokenStep, ...] = tuple(kept) if usable else ()
        self._rows: np.ndarray | None = None  # (len(ids), vocab) after prefill
        self._picked: np.ndarray | None = None  # (vocab,) the picked token's logits (kept mode)

    def __len__(self) -> int:
        return len(self.ids)

    def prefill(
        self, stepper: _Stepper, prompt_ids: Sequence[int], cancel: threading.Event | None
    ) -> Generator[PrefillProgress, None, np.ndarray | None]:
        """Phase 1: the prompt, and the forced ids but the last. Yields the stepper's
        PrefillProgress (a decoder-only stepper: one per prefill run, see `prefill_chunks`; none
        for a stepper without it) and returns float32[vocab], the logits for reply token 0, or
        None when cancelled. With no forced ids this is exactly `stepper.prefill`."""
        chunks = getattr(stepper, "prefill_chunks", None)  # decoder-only: runs in chunks
        if not self.ids:
            if chunks is None:
                return stepper.prefill(list(prompt_ids), cancel)
            rows = yield from chunks(list(prompt_ids), 1, cancel)
            return None if rows is None else rows[-1]
        prefix = list(self.ids[:-1])
        if chunks is None:
            self.kept = ()  # an encoder-decoder prefill reads the prompt only
        if self.kept and chunks is not None:  # the kept records exist: the picked logits only
            rows = yield from chunks([*prompt_ids, *prefix], 1, cancel)
            self._picked = None if rows is None else rows[-1]
            return self._picked
        if chunks is not None:  # decoder-only: one run for the last prompt id + prefix
            rows = yield from chunks([*prompt_ids, *prefix], len(prefix) + 1, cancel)
        else:  # encoder-decoder: the prefix goes through the decoder one step at a time
            rows = _stepwise(stepper, prompt_ids, prefix, cancel)
        self._rows = rows  # (len(ids), vocab)
        return None if rows is None else rows[0]

    def forces(self, index: int) -> bool:
        """Reply token `index` is given, not sampled."""
        return index < len(self.ids)

    def choose(
        self, index: int, logits: np.ndarray, seen_ids: np.ndarray, settings: GenerationSettings
    ) -> tuple[int, np.ndarray]:
        """The forced token at `index` and the float64[vocab] distribution the sampler would
        have drawn it from (no random draw is made). logits: float32[vocab]; seen_ids: int64[n].
        Raises SamplingError when no logit is finite (E4)."""
        penalized = apply_repetition_penalty(logits, seen_ids, settings.repetition_penalty)
        return self.ids[index], sampling_distribution(penalized, settings)  # (vocab,)

    def copied(self, index: int) -> TokenStep | None:
        """The original's record of reply token `index` when it is reused, else None."""
        return self.kept[index] if index < len(self.kept) else None

    def mark(self, record: TokenStep) -> TokenStep:
        """`record` flagged `forced` (and `picked` for the last forced token) when it is one."""
        if not self.forces(record.index):
            return record
        return dataclasses.replace(record, forced=True, picked=record.index == len(self.ids) - 1)

    def next_logits(self, index: int) -> np.ndarray | None:
        """float32[vocab] logits for reply token `index` + 1 when phase 1 already computed them
        (token `index` is forced and not the last forced one), else None: run a decode step."""
        if index + 1 >= len(self.ids):
            return None
        if self.kept:  # the next token is kept (its logits are not needed) or the picked one
            return self._picked
        if self._rows is None:
            return None
        return self._rows[index + 1]


def _stepwise(
    stepper: _Stepper,
    prompt_ids: Sequence[int],
    prefix: list[int],
    cancel: threading.Event | None,
) -> np.ndarray | None:
    """float32[1 + len(prefix), vocab]: prefill, then one decode step per prefix id."""
    logits = stepper.prefill(list(prompt_ids), cancel)
    if logits is None:
        return None
    rows = [logits]
    for token_id in prefix:
        if cancel is not None and cancel.is_set():
            return None
        rows.append(stepper.step(token_id))
    return np.stack(rows)  # (1 + len(prefix), vocab)
