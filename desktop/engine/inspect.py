"""Inside the model: attention maps and the logit lens for a token sequence, from the probe graph.

Owns: running a model folder's probe graph (`onnx/probe_model.onnx`, written by
model_export/probe.py) on demand, and the limits that keep its memory bounded. The probe is
opened on the first `inspect` call and released by `close`, so chatting costs nothing extra
while no attention or layer view is open. `inspect` blocks for the length of one probe run
(0.1-1 s, see README): call it from a worker thread, never the GUI thread. Thread-safe (one probe
run at a time per Inspector); it does not take the chat's generation lock.

Knows nothing about chat templates or Qt: it reads token ids. Decoder-only models: `inspect`;
encoder-decoder models: `inspect_seq2seq` (encoder, decoder and cross attention).

Limits (what happens past them): a sequence of at most MAX_TOKENS tokens (the probe's eager
attention holds one [heads, seq, seq] float32 score matrix per layer while it runs: 9 x 2048 x
2048 x 4 B = 151 MB for the default model); attention rows returned by one call at most
MAX_ATTENTION_BYTES (layers x heads x rows x seq x 4 B; ask for fewer `positions`, e.g. the
reply's tokens or the selected one). Past either, `InspectTooLargeError` says by how much.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from desktop.engine.errors import (
    EmptyMessageError,
    EngineError,
    InspectTooLargeError,
    NoProbeGraphError,
)
from desktop.engine.manifest import ModelManifest
from desktop.engine.session import Graph, default_threads

MAX_TOKENS = 2048
MAX_ATTENTION_BYTES = 256 * 2**20
HOW_TO_MAKE = (
    "make one with `tokenglass-export SOURCE --out FOLDER --add-probe` (SOURCE: the model it was "
    "exported from; for the default model `tokenglass-export default` adds it)"
)


@dataclass(frozen=True, eq=False)
class Inspection:
    """What the probe saw for one sequence (arrays are read-only; all log-probs natural-log).

    ids: the sequence read, int ids, length seq. positions: the query positions the rows are for.
    attention: float32[layers, heads, rows, seq], softmax probabilities after the causal mask
    (each row sums to 1; keys after the query are 0); one map per query head.
    lens_ids: int64[layers, rows, k], lens_logprobs: float32[layers, rows, k]: layer l's (1..L)
    top-k next-token predictions, best first, from the residual stream after layer l through the
    final norm and lm_head; the last layer's are the model's own next-token log-probabilities.
    seconds: wall time of the probe run.
    """

    ids: tuple[int, ...]
    positions: tuple[int, ...]
    attention: np.ndarray
    lens_ids: np.ndarray
    lens_logprobs: np.ndarray
    seconds: float

    @property
    def layers(self) -> int:
        return int(self.attention.shape[0])

    @property
    def heads(self) -> int:
        return int(self.attention.shape[1])


@dataclass(frozen=True, eq=False)
class Seq2SeqInspection:
    """What an encoder-decoder probe saw (read-only arrays, natural-log log-probs).

    input_ids: the encoder's input (length src). decoder_ids: the decoder's input, the decoder
    start token first (length tgt). positions: the decoder positions the rows are for.
    encoder_attention float32[enc_layers, heads, src, src]; decoder_attention float32[layers,
    heads, rows, tgt] (causal); cross_attention float32[layers, heads, rows, src]. lens_ids
    int64[layers, rows, k] and lens_logprobs float32[layers, rows, k]: the logit lens over the
    decoder positions (the last layer's are the model's own next-token log-probabilities).
    """

    input_ids: tuple[int, ...]
    decoder_ids: tuple[int, ...]
    positions: tuple[int, ...]
    encoder_attention: np.ndarray
    decoder_attention: np.ndarray
    cross_attention: np.ndarray
    lens_ids: np.ndarray
    lens_logprobs: np.ndarray
    seconds: float


class Inspector:
    """Runs one model folder's probe graph. Opening costs nothing; the session starts on the first
    `inspect`. Raises NoProbeGraphError from `inspect` when the folder has no probe graph."""

    def __init__(self, manifest: ModelManifest, provider: str = "cpu", threads: int | None = None):
        self.manifest = manifest
        self._provider = provider
        self._threads = threads if threads and threads > 0 else default_threads()
        self._graph: Graph | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether the folder has a probe graph (the views show their one-line note when not)."""
        return self.manifest.probe_graph is not None

    def unavailable_reason(self) -> str:
        """The one line a view or the CLI shows for a folder without a probe graph."""
        folder = self.manifest.path
        if (folder / "training" / "config.json").is_file():  # a model trained here (dates T5)
            how = (
                "make one with `tokenglass-export "
                f"{folder / 'training'} --out {folder} --add-probe` (its training/ folder is "
                "the model it was exported from)"
            )
        else:
            how = HOW_TO_MAKE
        return f"{self.manifest.name} has no probe graph (onnx/probe_model.onnx); {how}."

    def inspect(
        self, ids: Sequence[int], positions: Sequence[int] | None = None, top_k: int = 5
    ) -> Inspection:
        """Attention rows and the logit lens of `ids` at `positions` (None: every position).

        top_k: lens entries per layer and position, 1 to the probe's own top-k (20).
        Raises NoProbeGraphError, EmptyMessageError (no ids), InspectTooLargeError (over
        MAX_TOKENS, the context window or MAX_ATTENTION_BYTES), EngineError (an id outside the
        vocabulary, a position outside the sequence, a bad top_k, an encoder-decoder probe, or
        the run failing).
        """
        ids = [int(i) for i in ids]
        rows = list(range(len(ids))) if positions is None else [int(p) for p in positions]
        graph = self._open()
        if graph.metadata.get("kind", "decoder") != "decoder":
            raise EngineError(
                f"{self.manifest.name} is an encoder-decoder model: inspect its encoder input "
                "and decoder input together (inspect_seq2seq)."
            )
        self._validate(ids, rows, top_k, graph)
        feeds = {
            "input_ids": np.asarray([ids], dtype=np.int64),  # (1, seq)
            "positions": np.asarray(rows, dtype=np.int64),  # (rows,)
        }
        with self._lock:
            started = time.perf_counter()
            attention, logprobs, lens_ids = graph.run(feeds)
            seconds = time.perf_counter() - started
        attention = np.ascontiguousarray(attention[:, 0])  # (L, heads, rows, seq)
        logprobs = np.ascontiguousarray(logprobs[:, 0, :, :top_k])  # (L, rows, k)
        lens_ids = np.ascontiguousarray(lens_ids[:, 0, :, :top_k])  # (L, rows, k)
        for array in (attention, logprobs, lens_ids):
            array.setflags(write=False)
        return Inspection(tuple(ids), tuple(rows), attention, lens_ids, logprobs, seconds)

    def inspect_seq2seq(
        self,
        input_ids: Sequence[int],
        decoder_ids: Sequence[int],
        positions: Sequence[int] | None = None,
        top_k: int = 5,
    ) -> Seq2SeqInspection:
        """An encoder-decoder model's attention (encoder, decoder, cross) and the logit lens for
        the encoder input `input_ids` and the decoder input `decoder_ids` (start token first),
        at decoder `positions` (None: all). Raises as `inspect` (both sequences are checked
        against the limits), and EngineError for a decoder-only model's probe."""
        source = [int(i) for i in input_ids]
        target = [int(i) for i in decoder_ids]
        rows = list(range(len(target))) if positions is None else [int(p) for p in positions]
        graph = self._open()
        if graph.metadata.get("kind") != "encoder-decoder":
            raise EngineError(f"{self.manifest.name} is not an encoder-decoder model.")
        self._validate(source, list(range(len(source))), top_k, graph)
        self._validate(target, rows, top_k, graph)
        feeds = {
            "input_ids": np.asarray([source], dtype=np.int64),  # (1, src)
            "decoder_input_ids": np.asarray([target], dtype=np.int64),  # (1, tgt)
            "positions": np.asarray(rows, dtype=np.int64),  # (rows,)
        }
        with self._lock:
            started = time.perf_counter()
            encoder, decoder, cross, logprobs, lens_ids = graph.run(feeds)
            seconds = time.perf_counter() - started
        arrays = [
            np.ascontiguousarray(a)
            for a in (
                encoder[:, 0],  # (Le, heads, src, src)
                decoder[:, 0],  # (L, heads, rows, tgt)
                cross[:, 0],  # (L, heads, rows, src)
                lens_ids[:, 0, :, :top_k],  # (L, rows, k)
                logprobs[:, 0, :, :top_k],  # (L, rows, k)
            )
        ]
        for array in arrays:
            array.setflags(write=False)
        enc, dec, crs, top_ids, top_lp = arrays
        return Seq2SeqInspection(
            tuple(source), tuple(target), tuple(rows), enc, dec, crs, top_ids, top_lp, seconds
        )

    def close(self) -> None:
        """Release the probe's session (the next `inspect` opens it again)."""
        with self._lock:
            self._graph = None

    def _open(self) -> Graph:
        if self.manifest.probe_graph is None:
            raise NoProbeGraphError(self.unavailable_reason())
        with self._lock:
            if self._graph is None:
                self._graph = Graph(self.manifest.probe_graph, self._provider, self._threads)
            return self._graph

    def _validate(self, ids: list[int], rows: list[int], top_k: int, graph: Graph) -> None:
        if not ids:
            raise EmptyMessageError("There is nothing to inspect: the text has no tokens.")
        if len(ids) > MAX_TOKENS:
            raise InspectTooLargeError(
                f"The sequence is {len(ids)} tokens; inspect reads at most {MAX_TOKENS} "
                "(inspect the last part of it)."
            )
        if len(ids) > self.manifest.context_size:
            raise InspectTooLargeError(
                f"The sequence is {len(ids)} tokens, longer than this model's context window "
                f"({self.manifest.context_size})."
            )
        vocab = self.manifest.config.get("vocab_size")
        if isinstance(vocab, int) and any(not 0 <= i < vocab for i in ids):
            raise EngineError(f"A token id is outside this model's vocabulary (0 to {vocab - 1}).")
        if not rows or any(not 0 <= p < len(ids) for p in rows):
            raise EngineError(f"Positions must be between 0 and {len(ids) - 1}.")
        limit = int(graph.metadata.get("lens_top_k", "20"))
        if not 1 <= top_k <= limit:
            raise EngineError(f"top-k must be between 1 and {limit}, not {top_k}.")
        layers = int(graph.metadata.get("layers", "1"))
        heads = int(graph.metadata.get("heads", "1"))
        size = layers * heads * len(rows) * len(ids) * 4
        if size > MAX_ATTENTION_BYTES:
            fit = MAX_ATTENTION_BYTES // (layers * heads * len(ids) * 4)
            raise InspectTooLargeError(
                f"Attention for {len(rows)} positions of {len(ids)} tokens takes "
                f"{size / 2**20:.0f} MiB, over the {MAX_ATTENTION_BYTES // 2**20} MiB limit; "
                f"ask for at most {fit} positions."
            )
