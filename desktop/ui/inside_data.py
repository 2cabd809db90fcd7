"""What the Attention and Layers views show for one selected token of a reply, made from the
engine's probe (`ChatModel.inspect` / `inspect_seq2seq`). Qt-free: the views draw these records,
the controller runs `inspect_token` off the GUI thread.

Which row: the selected token at reply index i was chosen by the model at the position that
read the token before it (decoder-only: prompt length + i - 1; encoder-decoder: decoder position
i, whose input starts with the decoder start token). Its attention row is what the model looked
at when it chose the token, and its logit-lens row is how that choice formed layer by layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LENS_TOP_K = 5


@dataclass(frozen=True)
class InsideRequest:
    """One selected token, ready for the probe. reply_key: (conversation node key, index) as
    the controller caches it. ids: decoder-only, the prompt and the reply up to the selected
    token; encoder-decoder, the encoder's input. decoder_ids: the decoder's input (start token
    first; () for decoder-only). position: the query row. labels: one display label per id of
    the attended sequence (ids, or decoder_ids); input_labels: the encoder input's labels.
    chosen_id / chosen: the selected token."""

    reply_key: tuple[int, int]
    seq2seq: bool
    ids: tuple[int, ...]
    decoder_ids: tuple[int, ...]
    position: int
    labels: tuple[str, ...]
    input_labels: tuple[str, ...]
    chosen_id: int
    chosen: str


@dataclass(frozen=True, eq=False)
class AttentionSet:
    """One kind of attention for the selected token. maps: float32[layers, heads, rows, keys]
    (rows: 1, the selected token's query; the encoder's self-attention has one row per input
    token). labels: the keys' tokens. query: what attends, for the heading and the text
    alternative ("the step that wrote “Paris”")."""

    title: str
    query: str
    labels: tuple[str, ...]
    maps: np.ndarray


@dataclass(frozen=True)
class LensEntry:
    id: int
    token: str
    prob: float  # in [0, 1]


@dataclass(frozen=True, eq=False)
class InsideResult:
    """Both views' data. sets: self-attention (decoder-only), or cross, decoder and encoder
    attention (encoder-decoder). lens: per layer 1..L, the top LENS_TOP_K predictions at the
    selected token's position. seconds: the probe's run time."""

    request: InsideRequest
    sets: tuple[AttentionSet, ...]
    lens: tuple[tuple[LensEntry, ...], ...]
    seconds: float

    @property
    def final(self) -> LensEntry:
        """The model's own top prediction (the last layer's top-1)."""
        return self.lens[-1][0]

    @property
    def first_top_layer(self) -> int:
        """1-based layer from which the final token is the top prediction in every later layer."""
        final = self.final.id
        layer = len(self.lens)
        while layer > 1 and self.lens[layer - 2][0].id == final:
            layer -= 1
        return layer


def make_request(model: Any, reply: Any, index: int) -> InsideRequest | None:
    """The request for token `index` of `reply` (a conversation `Node` with `prompt` and
    `steps`), or None when there is nothing to inspect yet (no prompt, index out of range)."""
    prompt = reply.prompt
    if prompt is None or not 0 <= index < len(reply.steps):
        return None
    label = _labeller(model)
    reply_ids = tuple(step.id for step in reply.steps[:index])
    chosen = reply.steps[index]
    prompt_ids = tuple(prompt.prompt_ids)
    if getattr(model, "kind", "decoder") == "encoder-decoder":
        start = model.manifest.decoder_start_id
        decoder_ids = (int(start if start is not None else 0), *reply_ids)
        return InsideRequest(
            (reply.key, index),
            True,
            prompt_ids,
            decoder_ids,
            index,
            tuple(label(i) for i in decoder_ids),
            tuple(label(i) for i in prompt_ids),
            chosen.id,
            label(chosen.id),
        )
    ids = prompt_ids + reply_ids
    labels = tuple(label(i) for i in ids)
    return InsideRequest(
        (reply.key, index), False, ids, (), len(ids) - 1, labels, (), chosen.id, label(chosen.id)
    )


def inspect_token(model: Any, request: InsideRequest) -> InsideResult:
    """Runs the probe for `request` (blocking: call it off the GUI thread). Raises what
    `ChatModel.inspect` raises: NoProbeGraphError, InspectTooLargeError, EngineError."""
    label = _labeller(model)
    query = f"the step that wrote “{visible_label(request.chosen)}”"
    if request.seq2seq:
        seen = model.inspect_seq2seq(
            request.ids, request.decoder_ids, [request.position], LENS_TOP_K
        )
        sets = (
            AttentionSet(
                "Cross-attention (to the input)", query, request.input_labels, seen.cross_attention
            ),
            AttentionSet("Decoder self-attention", query, request.labels, seen.decoder_attention),
            AttentionSet(
                "Encoder self-attention",
                "the input's tokens, on average",
                request.input_labels,
                seen.encoder_attention,
            ),
        )
    else:
        seen = model.inspect(request.ids, [request.position], LENS_TOP_K)
        sets = (AttentionSet("Self-attention", query, request.labels, seen.attention),)
    lens = tuple(
        tuple(
            LensEntry(int(i), label(int(i)), float(np.exp(lp)))
            for i, lp in zip(seen.lens_ids[layer, 0], seen.lens_logprobs[layer, 0], strict=True)
        )
        for layer in range(seen.lens_ids.shape[0])
    )
    return InsideResult(request, sets, lens, seen.seconds)


def weights(maps: np.ndarray, layer: int | None, head: int | None) -> np.ndarray:
    """float32[rows, keys] of `maps` (float32[layers, heads, rows, keys]) at `layer` and `head`
    (0-based; None: the mean over all layers / heads)."""
    chosen = maps.mean(axis=0) if layer is None else maps[layer]  # (heads, rows, keys)
    return chosen.mean(axis=0) if head is None else chosen[head]  # (rows, keys)


def scale(values: np.ndarray, skip_first: bool) -> float:
    """The value drawn at full colour: the largest of `values` (the first left out when
    `skip_first`, the attention sink); never 0."""
    kept = values[1:] if skip_first and values.shape[-1] > 1 else values
    top = float(kept.max()) if kept.size else 0.0
    return top if top > 0 else 1.0


def top_attended(labels: Sequence[str], row: np.ndarray, n: int = 3) -> list[tuple[str, float]]:
    """The `n` most attended keys of `row` (float32[keys]), most first, as (label, weight)."""
    order = np.argsort(-row, kind="stable")[:n]
    return [(labels[i], float(row[i])) for i in order]


def visible_label(label: str) -> str:
    """A token label that stays visible on its own: whitespace-only tokens become ␣ ↵ ⇥."""
    if label.strip():
        return label
    return label.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def _labeller(model: Any) -> Callable[[int], str]:
    tokenizer = getattr(model, "tokenizer", None)
    return tokenizer.token_label if tokenizer is not None else str
