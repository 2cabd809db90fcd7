"""Steppers: `prefill(prompt_ids) -> logits`, then `step(token_id) -> logits`, over ONNX graphs.

Owns: feeding a decoder-only graph (input_ids, attention_mask, position_ids, KV cache, kept
across turns for the prompt prefix they share: a follow-up to a 300-token reply, 354 prompt tokens,
had its first token after 49 ms instead of 666 on the default model) and an
encoder-decoder pair (encoder once, then decoder steps with the encoder's states and a KV cache;
merged graphs switch with `use_cache_branch`, older pairs use a separate first-step graph).
Which inputs exist was decided by manifest.describe_graph from the graphs' own names (case D2);
this module only fills the inputs a graph has. Logits are float32[vocab] for the last position.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from typing import Any, Literal, TypeVar

import numpy as np

from desktop.engine.errors import ModelFolderError
from desktop.engine.events import PrefillProgress
from desktop.engine.kv_cache import KVCache, SharedKVCache
from desktop.engine.manifest import GraphSpec, ModelManifest, describe_graph
from desktop.engine.session import Graph, ort_value

SHARE_BUFFER_KEY = "past_present_share_buffer"
"""Graph metadata (model_export's fused graph writes it; onnxruntime-genai's genai_config.json
uses the same term): "1" when past and present may be one buffer (see SharedKVCache)."""

PREFILL_CHUNK = 256
"""Prompt tokens per prefill run. A decoder-only prompt goes through the KV cache in chunks of
this size, and the cancel flag is checked between chunks, so Stop (or closing the window) takes
effect within one chunk instead of after the whole prompt (QA defect 1: a 5,000-token prefill
ignored Stop for 25 s). Measured on the default model (SmolLM2-135M fused graph, CPU, 1 thread,
median of 6 interleaved runs): a 45-token prompt is one run either way (164 vs 161 ms); a
2,000-token prompt took 8.2 s in one run and 8.0 s in 8 chunks, so chunking costs nothing
measurable, and one chunk is about 1 s at 1 thread, 0.5 s at 2. The logits are identical."""


_R = TypeVar("_R")


def run_to_end(steps: Generator[object, None, _R]) -> _R:
    """Run a generator to its end, dropping what it yields; returns its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _spec(graph: Graph) -> GraphSpec:
    return describe_graph(graph.file, graph.inputs, graph.outputs)


def _ids(ids: Sequence[int]) -> np.ndarray:
    return np.asarray(ids, dtype=np.int64).reshape(1, -1)  # (1, T)


class DecoderStepper:
    """A decoder-only model. `position`: tokens already in the KV cache."""

    prefill_phase: Literal["prefill", "encode"] = "prefill"

    def __init__(self, manifest: ModelManifest, graphs: dict[str, Graph]):
        self.graph = graphs["decoder"]
        self.spec = _spec(self.graph)
        if not self.spec.takes_cache:
            raise ModelFolderError(
                f"{self.graph.file} takes no past_key_values inputs: export it with a KV cache "
                "(optimum task text-generation-with-past)."
            )
        self.cache: KVCache | SharedKVCache
        shared = self.graph.metadata.get(SHARE_BUFFER_KEY) == "1" or manifest.share_kv_buffer
        if shared and not self.spec.encoder_states:
            self.cache = SharedKVCache(self.spec.slots, manifest.config, manifest.context_size)
        else:
            self.cache = KVCache(self.spec.slots, manifest.config)
        self._binding: Any = None  # IO binding of the shared buffers (SharedKVCache only)
        self._outputs = ["logits", *self.spec.self_presents]
        self._cached: list[int] = []  # the ids whose keys and values the cache holds, in order
        self.reused = 0  # prompt tokens the last prefill took from the cache instead of running
        # the graph's logits hold the last position only ([batch, 1, vocab]: a fixed 1 on axis 1)
        self.last_position_only = self.graph.output_shapes.get("logits", (None, None))[1:2] == (1,)

    @property
    def position(self) -> int:
        return self.cache.length

    def forget(self) -> None:
        """Empty the cache: the next prefill runs its whole prompt (benchmarks, fresh starts)."""
        self.cache.reset()
        self._cached = []

    def prefill(
        self,
        prompt_ids: Sequence[int],
        cancel: threading.Event | None = None,
        chunk: int | None = None,
    ) -> np.ndarray | None:
        """Run the prompt, `chunk` tokens per run (None: PREFILL_CHUNK), after the longest prefix
        it shares with what the KV cache already holds (the previous turn's prompt and reply, or
        the same prompt for a Regenerate), which is kept rather than run again: prefix caching,
        as llama.cpp's server does with cache_prompt. At least the last prompt token runs (its
        logits are the result). `self.reused` says how many tokens were kept.

        Returns float32[vocab] next-token logits after the last prompt token, or None when
        `cancel` was set between chunks (the cache then holds only the chunks that ran). The
        logits equal one run of the whole prompt from an empty cache (each chunk attends to the
        cache before it; the kept positions hold what a new run would compute).
        """
        rows = self.prefill_rows(prompt_ids, 1, cancel, chunk)
        return None if rows is None else rows[-1]

    def prefill_rows(
        self,
        ids: Sequence[int],
        rows: int,
        cancel: threading.Event | None = None,
        chunk: int | None = None,
    ) -> np.ndarray | None:
        """`prefill` that also returns the logits after each of the last `rows` tokens of `ids`
        (a forced reply prefix: the loop needs the model's distribution at every forced token).
        Those tokens always run, in the same run(s) as the rest (no extra run per row); the
        prefix before them is kept from the cache as `prefill` keeps it.

        Returns float32[rows, vocab], row j = next-token logits after ids[: len(ids) - rows + j
        + 1], or None when cancelled between chunks. rows: 1 <= rows <= len(ids) (clamped).
        """
        return run_to_end(self.prefill_chunks(ids, rows, cancel, chunk))

    def prefill_chunks(
        self,
        ids: Sequence[int],
        rows: int = 1,
        cancel: threading.Event | None = None,
        chunk: int | None = None,
    ) -> Generator[PrefillProgress, None, np.ndarray | None]:
        """`prefill_rows` as a generator that reports its progress: yields PrefillProgress(0,
        total) before the first run and PrefillProgress(done, total) after each run (total: the
        tokens after the `reused` cache prefix), and returns what `prefill_rows` returns."""
        ids = list(ids)
        rows = max(1, min(rows, len(ids)))
        keep = 0
        limit = min(len(self._cached), len(ids) - rows)
        while keep < limit and self._cached[keep] == ids[keep]:
            keep += 1
        if keep:
            self.cache.rewind(keep)
            del self._cached[keep:]
        else:
            self.forget()
        self.reused = keep
        size = max(1, chunk or PREFILL_CHUNK)
        first_row = len(ids) - rows  # the first id whose logits are wanted
        parts: list[np.ndarray] = []
        done, total = 0, len(ids) - keep
        yield PrefillProgress(done, total, keep)
        for part, start in self._row_runs(ids, keep, first_row, size):
            if cancel is not None and cancel.is_set():
                return None
            logits = self._run(part)  # (T, vocab), or (1, vocab) from a last-position graph
            wanted = start + len(part) - max(start, first_row)
            if wanted > 0:
                parts.append(logits[len(logits) - wanted :])  # (wanted, vocab)
            done += len(part)
            yield PrefillProgress(done, total, keep)
        if not parts:  # an empty prompt: still one run, as before
            parts.append(self._run(ids)[-1:])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)  # (rows, vocab)

    def _row_runs(
        self, ids: list[int], keep: int, first_row: int, size: int
    ) -> list[tuple[list[int], int]]:
        """(the ids of one run, where they start) for `prefill_rows`: chunks of `size`; for a
        graph whose logits hold the last position only (model_export's default graph: `logits`
        [batch, 1, vocab]), the wanted rows after the first run one token each."""
        if not self.last_position_only:
            return [(ids[i : i + size], i) for i in range(keep, len(ids), size)]
        head = [
            (ids[i : min(i + size, first_row + 1)], i) for i in range(keep, first_row + 1, size)
        ]
        return head + [([ids[i]], i) for i in range(max(keep, first_row + 1), len(ids))]

    def step(self, token_id: int) -> np.ndarray:
        """Append one token to the cache. Returns float32[vocab] next-token logits."""
        return self._run([token_id])[-1]

    def _run(self, ids: list[int]) -> np.ndarray:
        """Run `ids` after the cache. Returns float32[T, vocab]: the logits after each id."""
        try:
            logits = self._forward(ids)
        except BaseException:  # the cache may be half updated: start the next prompt afresh
            self.forget()
            raise
        self._cached += ids
        return logits

    def _forward(self, ids: list[int]) -> np.ndarray:
        if isinstance(self.cache, SharedKVCache):
            return self._forward_shared(self.cache, ids)
        feeds = {**self._token_feeds(ids), **self.cache.feeds()}
        logits, *presents = self.graph.run(feeds, self._outputs)  # logits: (1, T, vocab)
        to_past = self.spec.present_to_past
        self.cache.update({to_past[n]: a for n, a in zip(self._outputs[1:], presents, strict=True)})
        return logits[0].astype(np.float32, copy=False)  # (T, vocab)

    def _token_feeds(self, ids: list[int]) -> dict[str, np.ndarray]:
        """input_ids, and the attention mask and position ids where the graph takes them, for
        `ids` after the `self.cache.length` positions already in the cache."""
        past = self.cache.length
        total = past + len(ids)
        feeds = {"input_ids": _ids(ids)}  # (1, T)
        if self.spec.attention_mask:
            feeds[self.spec.attention_mask] = np.ones((1, total), dtype=np.int64)  # (1, past+T)
        if self.spec.position_ids:
            feeds[self.spec.position_ids] = np.arange(past, total, dtype=np.int64)[None]  # (1, T)
        return feeds

    def _forward_shared(self, cache: SharedKVCache, ids: list[int]) -> np.ndarray:
        """One run that writes its keys and values into the shared buffers in place."""
        total = cache.length + len(ids)
        if cache.reserve(total) or self._binding is None:
            self._binding = self.graph.io_binding()
            self._binding.bind_output("logits", "cpu")  # first: get_outputs()[0]
            for slot in cache.slots:
                value = ort_value(cache.buffers[slot.past])  # wraps the buffer, no copy
                self._binding.bind_ortvalue_input(slot.past, value)
                self._binding.bind_ortvalue_output(slot.present, value)
        for name, array in self._token_feeds(ids).items():
            self._binding.bind_cpu_input(name, array)
        self._binding.bind_output("logits", "cpu")  # unallocated again: its length is this run's
        self.graph.run_with_binding(self._binding)
        cache.length = total
        logits = self._binding.get_outputs()[0].numpy()  # (1, T, vocab)
        return logits[0].astype(np.float32, copy=False)  # (T, vocab)


class EncoderDecoderStepper:
    """An encoder-decoder model: the prompt goes through the encoder once; the reply is decoded
    from `decoder_start_id` (and BART's forced BOS). `position`: decoder tokens in the KV cache."""

    prefill_phase: Literal["prefill", "encode"] = "encode"

    def __init__(self, manifest: ModelManifest, graphs: dict[str, Graph]):
        self.encoder = graphs["encoder"]
        self.decoder = graphs["decoder"]
        self.first = graphs.get("decoder_first", self.decoder)
        self.spec = _spec(self.decoder)
        self.first_spec = _spec(self.first)
        # the cached graph reads the encoder either directly (a merged graph) or through the
        # cross-attention keys and values the first step put in the cache (optimum's older
        # decoder_with_past_model.onnx, which has no encoder_hidden_states input, I16)
        has_cross = any(slot.cross for slot in self.spec.slots)
        if not self.spec.takes_cache or (self.spec.encoder_states is None and not has_cross):
            raise ModelFolderError(
                f"{self.decoder.file} needs past_key_values.* inputs, and either "
                "encoder_hidden_states or past_key_values.*.encoder.* inputs."
            )
        if self.first_spec.encoder_states is None:
            raise ModelFolderError(f"{self.first.file} has no encoder_hidden_states input.")
        self.states_input: str = self.first_spec.encoder_states
        start = manifest.decoder_start_id
        self.start_id = start if start is not None else manifest.pad_id
        if self.start_id is None:
            raise ModelFolderError(
                f"{manifest.path / 'config.json'} names no decoder_start_token_id or pad_token_id."
            )
        forced = manifest.forced_bos_id
        self.decoder_prefix = [self.start_id, *([forced] if forced is not None else [])]
        self.cache = KVCache(self.spec.slots, manifest.config)
        self._encoder_feeds: dict[str, np.ndarray] = {}
        self.reused = 0  # the encoder reads every prompt whole: nothing is kept between turns

    def forget(self) -> None:
        """Nothing to forget: every prefill encodes its prompt afresh."""

    @property
    def position(self) -> int:
        return self.cache.length

    def prefill(
        self, prompt_ids: Sequence[int], cancel: threading.Event | None = None
    ) -> np.ndarray | None:
        """Encode the prompt (one encoder run: its attention is bidirectional, so it cannot be
        split over a cache), then run the first decoder step. Returns float32[vocab], or None
        when `cancel` is set before the encoder runs."""
        if cancel is not None and cancel.is_set():
            return None
        ids = _ids(prompt_ids)  # (1, S)
        mask = np.ones_like(ids)  # (1, S)
        enc_inputs = {"input_ids": ids, "attention_mask": mask}
        enc_feeds = {k: v for k, v in enc_inputs.items() if k in self.encoder.inputs}
        (states,) = self.encoder.run(enc_feeds, ["last_hidden_state"])  # (1, S, d_model)
        self._encoder_feeds = {self.states_input: states}  # each graph takes those it has
        for spec in (self.first_spec, self.spec):
            if spec.encoder_mask:
                self._encoder_feeds[spec.encoder_mask] = mask
        self.cache.reset()
        return self._run(self.first, self.first_spec, self.decoder_prefix, first=True)

    def step(self, token_id: int) -> np.ndarray:
        """Append one reply token. Returns float32[vocab] next-token logits."""
        return self._run(self.decoder, self.spec, [token_id], first=False)

    def _run(self, graph: Graph, spec: GraphSpec, ids: list[int], first: bool) -> np.ndarray:
        encoder = {k: v for k, v in self._encoder_feeds.items() if k in spec.inputs}
        feeds = {"input_ids": _ids(ids), **encoder}  # (1, T)
        if spec.takes_cache:
            feeds.update(self.cache.feeds())
        if spec.use_cache_branch:
            feeds[spec.use_cache_branch] = np.array([not first], dtype=np.bool_)  # (1,)
        if spec.attention_mask:
            total = self.cache.length + len(ids)
            feeds[spec.attention_mask] = np.ones((1, total), dtype=np.int64)
        # cross-attention entries come from the first step only (later ones may echo them back)
        wanted = ["logits", *spec.self_presents, *(spec.cross_presents if first else ())]
        logits, *presents = graph.run(feeds, wanted)  # logits: (1, T, vocab)
        to_past = spec.present_to_past
        self.cache.update({to_past[n]: a for n, a in zip(wanted[1:], presents, strict=True)})
        return logits[0, -1].astype(np.float32, copy=False)  # (vocab,)


Stepper = DecoderStepper | EncoderDecoderStepper


def make_stepper(manifest: ModelManifest, graphs: dict[str, Graph]) -> Stepper:
    """The stepper for the graphs manifest.py found (encoder present -> encoder-decoder)."""
    if "encoder" in graphs:
        return EncoderDecoderStepper(manifest, graphs)
    return DecoderStepper(manifest, graphs)
