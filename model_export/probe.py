"""The probe graph: attention maps and the logit lens of a decoder-only model, in one ONNX file.

Written as `onnx/probe_model.onnx` beside the chat graphs. It runs the whole sequence at once
(no KV cache) in float32 from the PyTorch model the chat graph came from, through transformers'
eager attention (`output_attentions=True, output_hidden_states=True`) wrapped in `ProbeModule`
and exported with torch.onnx's TorchScript exporter.

I/O (batch 1 in practice; every axis below is dynamic except layers, heads and k):
    input_ids      int64[batch, seq]       the token sequence, read with a causal mask
    positions      int64[rows]             the query positions whose rows the caller wants
 -> attentions     float32[layers, batch, heads, rows, seq]   softmax(QK^T/sqrt(d) + mask) rows
                   for the chosen positions (grouped-query attention: one map per query head)
    lens_logprobs  float32[layers, batch, rows, LENS_TOP_K]   the logit lens's top-k log-probs
    lens_ids       int64[layers, batch, rows, LENS_TOP_K]     their token ids, best first

The lens at layer l (1..L) is log_softmax(lm_head(final_norm(h_l))) for the residual stream h_l
after layer l; at l = L it is the model's own logits. Top-k in the graph rather than the residual
streams as outputs: the streams would need the lm_head outside the graph (a second copy of the
largest matrix in the app, or numpy over [rows, vocab] per layer), while top-k keeps the output at
layers x rows x 20 numbers and the graph frees each layer's [rows, vocab] logits after its TopK.
Selecting `positions` inside the graph bounds the attention output at layers x heads x rows x seq
instead of x seq x seq (the engine sets the limits; see desktop/engine/inspect.py).

With `share_with` the probe reads its weights from the chat graph's own file (probe_share.py) and
stores only its graph; without it (the default model, whose float32 graph is not kept) it is a
float32 copy of the weights. Knows nothing about tokenizers or the engine.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .errors import ExportError
from .probe_share import share_weights

PROBE_FILE = "probe_model.onnx"
LENS_TOP_K = 20
OPSET = 17
INPUTS = ("input_ids", "positions")
OUTPUTS = ("attentions", "lens_logprobs", "lens_ids")
#: model_type -> dotted path (from the CausalLM) of the final norm that precedes the lm_head.
FINAL_NORMS: dict[str, str] = {
    "llama": "model.norm",
    "mistral": "model.norm",
    "qwen2": "model.norm",
    "gpt2": "transformer.ln_f",
}
CHECK_IDS_LENGTH = 24
SEQ2SEQ_INPUTS = ("input_ids", "decoder_input_ids", "positions")
SEQ2SEQ_OUTPUTS = (
    "encoder_attentions",
    "decoder_attentions",
    "cross_attentions",
    "lens_logprobs",
    "lens_ids",
)


def _module(model: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        model = getattr(model, part)
    return model


def probe_module(model: Any) -> Any:
    """`model` (a transformers causal LM, eager attention) wrapped as the probe's forward.

    Raises ExportError for a model type with no entry in FINAL_NORMS.
    """
    import torch

    model_type = model.config.model_type
    if model_type not in FINAL_NORMS:
        raise ExportError(f"no probe graph for model type {model_type!r} (supported: "
                          + ", ".join(FINAL_NORMS) + ")")  # fmt: skip

    class ProbeModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.norm = _module(model, FINAL_NORMS[model_type])
            self.head = model.get_output_embeddings()

        def forward(self, input_ids: torch.Tensor, positions: torch.Tensor):
            n = input_ids.shape[1]
            # an explicit additive causal mask: transformers' own mask builder (vmap) cannot be
            # traced; this one gives the same probabilities (masked entries exp to exactly 0)
            mask = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)[None, None]
            out = self.model(
                input_ids=input_ids,
                attention_mask=mask,  # (1, 1, seq, seq)
                output_attentions=True,
                output_hidden_states=True,
                use_cache=False,
                logits_to_keep=positions,  # the lm_head only at the rows asked for
            )
            # each (B, heads, seq, seq) -> rows -> (L, B, heads, rows, seq)
            attentions = torch.stack([a.index_select(2, positions) for a in out.attentions])
            # the residual streams after layers 1..L-1, each (B, seq, hidden); the last layer's
            # lens is the model's own logits (whether transformers' last hidden state is already
            # normed varies: optimum's export patches leave it un-normed)
            streams = out.hidden_states[1:-1]
            values, ids = [], []
            for layer in range(len(streams) + 1):
                if layer < len(streams):
                    h = streams[layer].index_select(1, positions)  # (B, rows, hidden)
                    logits = self.head(self.norm(h))  # (B, rows, vocab)
                else:
                    logits = out.logits  # (B, rows, vocab)
                logprobs = torch.log_softmax(logits.float(), dim=-1)  # (B, rows, vocab)
                top = torch.topk(logprobs, LENS_TOP_K, dim=-1)  # (B, rows, k)
                values.append(top.values)
                ids.append(top.indices)
            return attentions, torch.stack(values), torch.stack(ids)

    return ProbeModule().eval()


def _seq2seq_lens_head(model: Any) -> Any:
    """h (B, rows, d_model) -> logits (B, rows, vocab) for a decoder layer's residual stream, as
    the model computes its own logits from the last one: T5 applies the decoder's final RMSNorm
    and, with a tied head, scales by d_model^-0.5; BART and Marian (post-LN: each layer's output
    is already normed) add final_logits_bias. Raises ExportError for other model types."""
    kind = model.config.model_type
    if kind == "t5":
        norm, head = model.decoder.final_layer_norm, model.lm_head
        scale = model.config.d_model**-0.5 if model.config.tie_word_embeddings else 1.0
        return lambda h: head(norm(h) * scale)
    if kind in ("bart", "marian"):
        bias = model.final_logits_bias  # (1, vocab)
        return lambda h: model.lm_head(h) + bias
    raise ExportError(f"no probe graph for encoder-decoder model type {kind!r}")


def seq2seq_probe_module(model: Any) -> Any:
    """An encoder-decoder `model` (eager attention) wrapped as the seq2seq probe's forward:
    (input_ids, decoder_input_ids, positions) -> SEQ2SEQ_OUTPUTS (see the module docstring)."""
    import torch

    lens_head = _seq2seq_lens_head(model)

    class Seq2SeqProbe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, decoder_input_ids, positions):
            out = self.model(
                input_ids=input_ids,
                decoder_input_ids=decoder_input_ids,
                output_attentions=True,
                output_hidden_states=True,
                use_cache=False,
            )
            encoder = torch.stack(out.encoder_attentions)  # (Le, B, heads, S, S)
            decoder = torch.stack([a.index_select(2, positions) for a in out.decoder_attentions])
            cross = torch.stack([a.index_select(2, positions) for a in out.cross_attentions])
            streams = out.decoder_hidden_states[1:-1]  # after decoder layers 1..L-1
            values, ids = [], []
            for layer in range(len(streams) + 1):
                if layer < len(streams):
                    logits = lens_head(streams[layer].index_select(1, positions))
                else:
                    logits = out.logits.index_select(1, positions)  # (B, rows, vocab)
                top = torch.topk(torch.log_softmax(logits.float(), dim=-1), LENS_TOP_K, dim=-1)
                values.append(top.values)
                ids.append(top.indices)
            return encoder, decoder, cross, torch.stack(values), torch.stack(ids)

    return Seq2SeqProbe().eval()


def export_seq2seq_probe(model: Any, onnx_dir: Path, share_with: list[Path] | None = None) -> dict:
    """Write `onnx_dir/probe_model.onnx` for an encoder-decoder `model` (T5, BART, Marian).

    I/O: input_ids int64[batch, src], decoder_input_ids int64[batch, tgt], positions int64[rows]
    (decoder positions) -> encoder_attentions float32[Le, batch, heads, src, src],
    decoder_attentions float32[L, batch, heads, rows, tgt], cross_attentions float32[L, batch,
    heads, rows, src], lens_logprobs float32[L, batch, rows, 20], lens_ids int64[L, batch, rows,
    20] (the lens over decoder positions; layer L is the model's own logits). Checked against
    PyTorch as export_probe. Returns the report's `probe` section. Raises ExportError.
    """
    import torch

    started = time.perf_counter()
    vocab = model.config.vocab_size
    src = torch.arange(3, 3 + CHECK_IDS_LENGTH)[None] % vocab
    tgt = torch.arange(5, 5 + CHECK_IDS_LENGTH // 2)[None] % vocab
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    path = onnx_dir / PROBE_FILE
    try:
        wrapper = seq2seq_probe_module(model)
        with torch.no_grad():
            out = model(input_ids=src, decoder_input_ids=tgt, output_attentions=True)
        expected = {
            "attentions": torch.stack(out.cross_attentions)[:, 0].numpy(),  # (L, H, T, S)
            "logprobs": torch.log_softmax(out.logits[0].float(), -1).numpy(),  # (T, vocab)
        }
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings for every shape branch
            torch.onnx.export(
                wrapper,
                (src, tgt, torch.arange(tgt.shape[1])),
                str(path),
                input_names=list(SEQ2SEQ_INPUTS),
                output_names=list(SEQ2SEQ_OUTPUTS),
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "src"},
                    "decoder_input_ids": {0: "batch", 1: "tgt"},
                    "positions": {0: "rows"},
                    "encoder_attentions": {1: "batch", 3: "src", 4: "src_keys"},
                    "decoder_attentions": {1: "batch", 3: "rows", 4: "tgt"},
                    "cross_attentions": {1: "batch", 3: "rows", 4: "src"},
                    "lens_logprobs": {1: "batch", 2: "rows"},
                    "lens_ids": {1: "batch", 2: "rows"},
                },
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=False,
            )
    except (RuntimeError, ValueError, TypeError) as err:
        raise ExportError(f"the probe graph could not be exported: {err}") from err
    finally:
        model.set_attn_implementation(previous)
    config = model.config
    layers = getattr(config, "num_decoder_layers", None) or config.decoder_layers
    heads = getattr(config, "decoder_attention_heads", None) or config.num_attention_heads
    _mark(path, model, layers=layers, heads=heads, kind="encoder-decoder")
    shared = share_weights(path, share_with) if share_with else 0
    check = _check_seq2seq(path, src.numpy(), tgt.numpy(), expected)
    return {
        "file": f"onnx/{PROBE_FILE}",
        "bytes": _size(path),
        "shared_bytes": shared,
        "shared_with": [p.name for p in share_with or []],
        "export_s": round(time.perf_counter() - started, 2),
        "lens_top_k": LENS_TOP_K,
        "check": check,
    }


def _check_seq2seq(
    path: Path, src: np.ndarray, tgt: np.ndarray, expected: dict[str, np.ndarray]
) -> dict:
    """Cross-attention within 1e-4 and the last layer's lens within 1e-3 of PyTorch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {
        "input_ids": src,
        "decoder_input_ids": tgt,
        "positions": np.arange(tgt.shape[1], dtype=np.int64),
    }
    _, _, cross, lens_logprobs, lens_ids = session.run(None, feeds)
    return _compare(path, cross[:, 0], lens_logprobs[-1, 0], lens_ids[-1, 0], expected)


def export_probe(model: Any, onnx_dir: Path, share_with: list[Path] | None = None) -> dict:
    """Write `onnx_dir/probe_model.onnx` for `model` and check it against PyTorch.

    share_with: chat graphs in `onnx_dir` whose weights the probe reads instead of storing its
    own copy (probe_share.py); None or empty: self-contained.

    Switches `model` to eager attention for the export and back. torch.onnx's tracing leaves
    some models (GPT-2) computing differently afterwards, so call this after every other use of
    `model`. Returns the report's `probe` section (file, bytes, seconds, check). Raises
    ExportError for an unsupported model type, a failed export, or attention/lens that differ
    from PyTorch by more than 1e-4 / 1e-3.
    """
    import torch

    if model.config.vocab_size < LENS_TOP_K:
        raise ExportError(f"the vocabulary has fewer than {LENS_TOP_K} tokens")
    started = time.perf_counter()
    ids = torch.arange(CHECK_IDS_LENGTH, dtype=torch.long)[None] % model.config.vocab_size
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        wrapper = probe_module(model)
        expected = _reference(model, ids)
        path = onnx_dir / PROBE_FILE
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings for every shape branch
            torch.onnx.export(
                wrapper,
                (ids, torch.arange(ids.shape[1])),
                str(path),
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "seq"},
                    "positions": {0: "rows"},
                    "attentions": {1: "batch", 3: "rows", 4: "seq"},
                    "lens_logprobs": {1: "batch", 2: "rows"},
                    "lens_ids": {1: "batch", 2: "rows"},
                },
                opset_version=OPSET,
                dynamo=False,
                # folding would store each Linear's weight transposed: a tied embedding and
                # lm_head twice (+113 MB for the default model); ONNX Runtime folds at load
                do_constant_folding=False,
            )
    except (RuntimeError, ValueError, TypeError) as err:
        raise ExportError(f"the probe graph could not be exported: {err}") from err
    finally:
        model.set_attn_implementation(previous)
    _mark(path, model)
    shared = share_weights(path, share_with) if share_with else 0
    check = _check(path, ids.numpy(), expected)
    return {
        "file": f"onnx/{PROBE_FILE}",
        "bytes": _size(path),
        "shared_bytes": shared,
        "shared_with": [p.name for p in share_with or []],
        "export_s": round(time.perf_counter() - started, 2),
        "lens_top_k": LENS_TOP_K,
        "check": check,
    }


def _reference(model: Any, ids: Any) -> dict[str, np.ndarray]:
    """PyTorch's own eager attention rows (L, heads, seq, seq) and last-layer log-probs."""
    import torch

    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True, use_cache=False)
    return {
        "attentions": torch.stack(out.attentions)[:, 0].numpy(),  # (L, heads, seq, seq)
        "logprobs": torch.log_softmax(out.logits[0].float(), -1).numpy(),  # (seq, vocab)
    }


def _check(path: Path, ids: np.ndarray, expected: dict[str, np.ndarray]) -> dict:
    """The probe on `ids` against PyTorch: attention within 1e-4, last-layer lens within 1e-3."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    positions = np.arange(ids.shape[1], dtype=np.int64)
    attentions, lens_logprobs, lens_ids = session.run(
        None, {"input_ids": ids, "positions": positions}
    )
    return _compare(path, attentions[:, 0], lens_logprobs[-1, 0], lens_ids[-1, 0], expected)


def _compare(
    path: Path,
    attentions: np.ndarray,
    last_logprobs: np.ndarray,
    last_ids: np.ndarray,
    expected: dict[str, np.ndarray],
) -> dict:
    """attentions (L, heads, rows, keys), last-layer lens (rows, k) vs PyTorch's `expected`.
    Raises ExportError past 1e-4 (attention) or 1e-3 (log-probs) or a differing top-1."""
    attention_diff = float(np.abs(attentions - expected["attentions"]).max())
    want = np.take_along_axis(expected["logprobs"], last_ids, axis=-1)  # (rows, k)
    lens_diff = float(np.abs(last_logprobs - want).max())
    top1_equal = bool((last_ids[:, 0] == expected["logprobs"].argmax(-1)).all())
    if attention_diff > 1e-4 or lens_diff > 1e-3 or not top1_equal:
        raise ExportError(
            f"the probe graph differs from PyTorch: attention by {attention_diff:.1e} (limit "
            f"1e-4), last-layer log-probs by {lens_diff:.1e} (limit 1e-3), top-1 equal "
            f"{top1_equal}"
        )
    return {
        "positions": int(want.shape[0]),
        "attention_max_abs_diff": attention_diff,
        "lens_last_layer_max_abs_diff": lens_diff,
        "top1_equal": top1_equal,
    }


def _mark(
    path: Path, model: Any, *, layers: int = 0, heads: int = 0, kind: str = "decoder"
) -> None:
    """Record the probe's shape facts in the graph's metadata (the engine reads them)."""
    proto = onnx.load(str(path))
    config = model.config
    facts = {
        "tokenglass_probe": "1",
        "kind": kind,
        "layers": str(layers or config.num_hidden_layers),
        "heads": str(heads or config.num_attention_heads),
        "lens_top_k": str(LENS_TOP_K),
    }
    for key, value in facts.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(proto, str(path))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
