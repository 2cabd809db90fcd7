"""A fused float32 decoder graph from onnxruntime-genai's model builder (pinned 0.10.0).

optimum's export leaves attention unfused: rotary embedding, mask, softmax and the KV concat are
separate nodes, and each RMSNorm is half a dozen. onnxruntime-genai's builder writes the same
model with onnxruntime's contrib ops instead: GroupQueryAttention (rotary inside, Q/K/V as one
packed MatMul), SimplifiedLayerNormalization and SkipSimplifiedLayerNormalization. Built at
float32 (`-p fp32 -e cpu`), its MatMul weights are the model's own float32 weights, so
gguf_carry can replace them with the GGUF's blocks exactly.

I/O of the graph: `input_ids` int64[batch, seq], `attention_mask` int64[batch, past + seq],
`past_key_values.{i}.key|value` float32[batch, kv_heads, past, head_dim] -> `logits`
float32[batch, seq, vocab], `present.{i}.key|value`; no `position_ids` (GroupQueryAttention
derives positions from the attention mask); a zero-length past is the prefill.
Source: onnxruntime-genai src/python/py/models/builder.py (create_model), which this mirrors
without its genai_config.json and tokenizer copies.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from desktop.engine.steppers import SHARE_BUFFER_KEY

from .errors import ExportError

#: transformers architecture -> the builder class that writes it (builder 0.10.0 names).
BUILDER_CLASSES = {
    "LlamaForCausalLM": "LlamaModel",
    "MistralForCausalLM": "MistralModel",
    "Qwen2ForCausalLM": "QwenModel",
}
GRAPH_FORM = "onnxruntime-genai 0.10 builder fp32: GroupQueryAttention, fused RMSNorm"


def fused_available(model: Any) -> str | None:
    """None when `model` can get a fused graph here; else the reason it cannot."""
    arch = (getattr(model.config, "architectures", None) or [type(model).__name__])[0]
    if arch not in BUILDER_CLASSES:
        return f"no fused graph for {arch} (supported: {', '.join(BUILDER_CLASSES)})"
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head_dim % 16:  # onnxruntime's CPU GroupQueryAttention kernel requires it
        return f"GroupQueryAttention needs a head size that is a multiple of 16, not {head_dim}"
    try:
        import onnxruntime_genai.models.builder  # noqa: F401
    except Exception as err:  # not installed, or a version that needs another transformers
        return f"onnxruntime-genai's builder is unavailable: {type(err).__name__}: {err}"
    return None


def build_fused_fp32(model: Any, out_dir: Path) -> Path:
    """Write the fused float32 graph of `model` (a transformers causal LM) to
    `out_dir/model.onnx` (+ model.onnx.data); returns that path.

    Raises `ExportError` when the architecture or the builder is unavailable, or it fails.
    """
    reason = fused_available(model)
    if reason is not None:
        raise ExportError(reason)
    from onnxruntime_genai.models import builder
    from transformers import AutoConfig

    arch = (model.config.architectures or [type(model).__name__])[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hf-", dir=out_dir.parent) as scratch:
        hf_dir = Path(scratch) / "hf"
        model.save_pretrained(hf_dir)  # safetensors + config.json: what the builder reads
        config = AutoConfig.from_pretrained(hf_dir)
        config.architectures = [arch]
        cache = Path(scratch) / "cache"
        cache.mkdir()
        options: dict[str, Any] = {}
        chatter = io.StringIO()  # the builder prints every layer and tqdm bars
        try:
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                io_dtype = builder.set_io_dtype("fp32", "cpu", options)
                onnx_dtype = builder.set_onnx_dtype("fp32", options)
                cls = getattr(builder, BUILDER_CLASSES[arch])
                onnx_model = cls(config, io_dtype, onnx_dtype, "cpu", str(cache), options)
                onnx_model.make_model(str(hf_dir))
                onnx_model.save_model(str(out_dir))
        except Exception as err:
            last = (chatter.getvalue().strip().splitlines() or [""])[-1][:200]
            raise ExportError(f"onnxruntime-genai's builder failed: {err} {last}".strip()) from err
    path = out_dir / "model.onnx"
    if not path.is_file():
        raise ExportError("onnxruntime-genai's builder produced no model.onnx")
    return path


def tie_embedding(model: onnx.ModelProto) -> bool:
    """Make the token embedding read the lm_head's weight when the two are one tied matrix.

    The builder stores a tied embedding twice: E float32[vocab, hidden] for the Gather and
    W = Eᵀ float32[hidden, vocab] for the lm_head MatMul (113 MB each for SmolLM2-135M). When
    W equals Eᵀ exactly, the Gather becomes Gather(W, ids, axis=1) -> [hidden, batch, seq] and a
    Transpose to [batch, seq, hidden] (the same values), and E is dropped. Returns whether it tied.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    gathers = [n for n in graph.node if n.op_type == "Gather" and n.input[0] in inits]
    heads = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    for gather in gathers:
        table = inits[gather.input[0]]
        for head in heads:
            weight = inits[head.input[1]]
            if len(table.dims) != 2 or list(weight.dims) != list(table.dims)[::-1]:
                continue
            if not np.array_equal(numpy_helper.to_array(weight), numpy_helper.to_array(table).T):
                continue
            gathered = f"{gather.output[0]}/columns"  # (hidden, batch, seq)
            index = list(graph.node).index(gather)
            graph.node.remove(gather)
            graph.node.insert(index, helper.make_node(
                "Transpose", [gathered], list(gather.output), perm=[1, 2, 0],
                name=f"{gather.name}/Transpose",
            ))  # fmt: skip
            graph.node.insert(index, helper.make_node(
                "Gather", [head.input[1], gather.input[1]], [gathered], axis=1, name=gather.name
            ))  # fmt: skip
            if not any(table.name in n.input for n in graph.node):
                graph.initializer.remove(table)
            return True
    return False


def pack_parallel_matmuls(model: onnx.ModelProto) -> int:
    """Pack MatMuls that read the same input (an MLP's gate and up) into one MatMul + Split.

    MatMul(x, W1[K, N1]) and MatMul(x, W2[K, N2]) become MatMul(x, [W1 W2]) -> Split(N1, N2),
    the same values from one node (then one MatMulNBits and one minima term once carried): fewer
    nodes per decode step, which dominates a model this small. Returns the count of packs.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    groups: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        if (
            node.op_type == "MatMul"
            and node.input[1] in inits
            and len(inits[node.input[1]].dims) == 2
        ):
            groups.setdefault(node.input[0], []).append(node)
    packs = 0
    for x, nodes in groups.items():
        if len(nodes) < 2 or len({inits[n.input[1]].dims[0] for n in nodes}) != 1:
            continue
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]  # each (K, N_i)
        name = f"{nodes[0].name or nodes[0].output[0]}/packed"
        graph.initializer.append(
            numpy_helper.from_array(np.concatenate(weights, axis=1), f"{name}.weight")
        )
        sizes = numpy_helper.from_array(np.array([w.shape[1] for w in weights], np.int64))
        sizes.name = f"{name}.split"
        graph.initializer.append(sizes)
        index = list(graph.node).index(nodes[0])
        for node in nodes:
            graph.node.remove(node)
            if not any(node.input[1] in n.input for n in graph.node):
                graph.initializer.remove(inits[node.input[1]])
        outputs = [o for n in nodes for o in n.output]
        graph.node.insert(index, helper.make_node(
            "Split", [f"{name}.out", sizes.name], outputs, axis=-1, name=f"{name}/Split"
        ))  # fmt: skip
        graph.node.insert(index, helper.make_node(
            "MatMul", [x, f"{name}.weight"], [f"{name}.out"], name=name
        ))  # fmt: skip
        packs += 1
    return packs


def prepare_fused(model: onnx.ModelProto) -> dict:
    """The fused graph's rewrite before the carry: pack_parallel_matmuls."""
    return {"packed_matmuls": pack_parallel_matmuls(model)}


def finish_fused(model: onnx.ModelProto) -> dict:
    """The fused graph's rewrites after the carry: tie_embedding, which applies only when the
    lm_head stayed a float32 MatMul (a carried lm_head reads the embedding's rows instead), and
    the SHARE_BUFFER_KEY metadata when every attention node is GroupQueryAttention: those nodes
    can read the past and write the present in one buffer bound to both, so the app's loop keeps
    one preallocated KV buffer per layer instead of copying the cache every decode step (the key
    is the engine's, desktop/engine/steppers.py, which reads it)."""
    ops = {n.op_type for n in model.graph.node}
    shared = "GroupQueryAttention" in ops and "Attention" not in ops
    if shared:
        onnx.helper.set_model_props(
            model, {**{p.key: p.value for p in model.metadata_props}, SHARE_BUFFER_KEY: "1"}
        )
    return {"embedding_tied_to_lm_head": tie_embedding(model), SHARE_BUFFER_KEY: shared}
