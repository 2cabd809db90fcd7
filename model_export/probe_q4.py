"""The probe graph of a fused 4-bit chat graph, made from that graph itself (no PyTorch).

The default model ships only `onnx/model_q4.onnx` (the GGUF's Q4_1 blocks in MatMulNBits, Q8_0
embedding, a rescored lm_head; gguf_carry.py and fused_graph.py). A float32 probe of it would be
a 539.6 MB copy of weights the folder does not keep. This module turns the chat graph into the
probe by graph surgery: the same nodes read the same initializers from the same data file
(`model_q4.onnx.data`: the probe's tensors keep their external-data entries, which name that file,
an offset and a length), so the probe file holds only its graph (0.34 MB for the default model) and
computes with exactly the chat graph's weights and kernels.

    chat graph (one run: a prefill or a decode step)  ->  probe (the whole sequence at once)
    input_ids, attention_mask, past_key_values.*      ->  input_ids, positions (mask made inside)
    GroupQueryAttention(past) -> present              ->  the same node, no past, qk_output=2:
        softmax(QKᵀ·scale + causal mask), one map per query head ─ Gather(rows) ─ attentions
    residual stream after each layer (the fused norms' input + skip sum) ─ Gather(rows) ─ the
        chat graph's final norm and lm_head nodes ─ LogSoftmax ─ TopK(20) ─ lens_logprobs,
        lens_ids (probe_q4_lens.py)

I/O: the float32 probe's (probe.py): input_ids int64[batch, seq], positions int64[rows] ->
attentions float32[layers, batch, heads, rows, seq], lens_logprobs float32[layers, batch, rows,
20], lens_ids int64[layers, batch, rows, 20]; so desktop/engine/inspect.py reads either.

The lens's last layer is the chat graph's own lm_head on the chat graph's own final norm, so its
top-1 is the chat graph's greedy token and its log-probabilities are the chat graph's
log_softmax(logits) (the rescored head: the top 64 logits float32, the rest with int8
activations). Attention comes from the GroupQueryAttention kernel itself (output_qk, mode 2: after
softmax; ONNX Runtime's contrib op spec, CPU kernel), one map per query head. Only `positions`'
rows leave each layer; the kernel holds one [batch, heads, seq, seq] map per layer while it runs
(as its prefill does).

Knows nothing about tokenizers, GGUF files or the engine. Source of the op semantics: onnxruntime
docs/ContribOperators.md (GroupQueryAttention, MatMulNBits, GatherBlockQuantized,
SimplifiedLayerNormalization).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import ExportError
from .probe import INPUTS, LENS_TOP_K, OUTPUTS, PROBE_FILE
from .probe_q4_lens import MERGED_ROWS, lens_inputs, lens_nodes, stack

AFTER_SOFTMAX = 2  # GroupQueryAttention's qk_output: 0 none, 1 before softmax, 2 after
QK_OUTPUT = 3  # its output index for those maps
RESIDUAL_OUTPUT = 3  # SkipSimplifiedLayerNormalization's input + skip sum


@dataclass(frozen=True)
class ChatParts:
    """Where the probe taps the chat graph: per layer (in order) its GroupQueryAttention node and
    the tensor holding the residual stream after it (the last layer's: already through the final
    norm); the final norm node; the lm_head's nodes (x -> logits) and its input tensor x."""

    attention: list[onnx.NodeProto]
    residuals: list[str]
    final_norm: onnx.NodeProto
    head_nodes: list[onnx.NodeProto]
    head_input: str
    logits: str


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output if out}


def _head_nodes(graph: onnx.GraphProto, x: str, logits: str) -> list[onnx.NodeProto]:
    """The nodes between tensor `x` and `logits`, in graph order: those that read x or a tensor
    made from x, and lead to logits. Initializers and graph-level constants are read as they are."""
    producers = _producers(graph)
    needed: set[int] = set()
    stack = [logits]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        node = producers.get(name)
        if name in seen or name == x or node is None:
            continue
        seen.add(name)
        needed.add(id(node))
        stack.extend(i for i in node.input if i)
    from_x: set[str] = {x}
    nodes = []
    for node in graph.node:
        if id(node) in needed and any(i in from_x for i in node.input):
            nodes.append(node)
            from_x.update(o for o in node.output if o)
    if not nodes or logits not in from_x:
        raise ExportError("the chat graph's lm_head does not read the final norm's output")
    return nodes


def find_parts(graph: onnx.GraphProto) -> ChatParts:
    """The taps of a fused chat graph (fused_graph.py, carried by gguf_carry.py).

    Layer i's attention reads Q/K/V made from a (Skip)SimplifiedLayerNormalization; for i >= 1
    that node's output 3 (input + skip) is the residual stream after layer i - 1. The logits'
    lm_head reads the final norm's output (through a Slice to the last position in the rescored
    form; that Slice is not part of the lm_head here: the probe picks its own rows).
    Raises ExportError for a graph of another form.
    """
    producers = _producers(graph)
    attention = [n for n in graph.node if n.op_type == "GroupQueryAttention"]
    if not attention:
        raise ExportError("the chat graph has no GroupQueryAttention: not a fused graph")
    if "logits" not in {o.name for o in graph.output}:
        raise ExportError("the chat graph has no `logits` output")
    residuals = []
    for layer, node in enumerate(attention[1:], start=1):
        norm = _norm_above(node, producers)
        if norm is None or norm.op_type != "SkipSimplifiedLayerNormalization":
            raise ExportError(f"layer {layer}'s attention input is not a fused residual norm")
        while len(norm.output) <= RESIDUAL_OUTPUT:
            norm.output.append("")
        if not norm.output[RESIDUAL_OUTPUT]:
            norm.output[RESIDUAL_OUTPUT] = f"{norm.name or norm.output[0]}/residual"
        residuals.append(norm.output[RESIDUAL_OUTPUT])
    final = _norm_above(producers["logits"], producers, steps=8)
    if final is None or final.op_type != "SkipSimplifiedLayerNormalization":
        raise ExportError("the chat graph's final norm was not found above its logits")
    x = final.output[0]
    readers = [n for n in graph.node if x in n.input]
    if len(readers) == 1 and readers[0].op_type == "Slice":  # the rescored head's last position
        x = readers[0].output[0]
    head = _head_nodes(graph, x, "logits")
    return ChatParts(attention, [*residuals, final.output[0]], final, head, x, "logits")


def _norm_above(
    node: onnx.NodeProto, producers: dict[str, onnx.NodeProto], steps: int = 4
) -> onnx.NodeProto | None:
    """The norm node above `node` along first inputs: the one whose output an attention's packed
    Q/K/V MatMul reads (through the carried MatMulNBits + minimum-term Add, or a float32
    MatMul), or the lm_head reads (through its Slice and MatMulNBits)."""
    if node.op_type in ("SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization"):
        return node
    name = node.input[0]
    for _ in range(steps):
        step = producers.get(name)
        if step is None:
            return None
        if step.op_type in ("SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization"):
            return step
        name = step.input[0]
    return None


def _attention_nodes(parts: ChatParts) -> tuple[list[onnx.NodeProto], list[str]]:
    """Each GroupQueryAttention made to output its probabilities (qk_output=2) and read without
    a past; returns the nodes picking their rows [B, heads, rows, seq] and those tensors."""
    nodes, rows = [], []
    for layer, node in enumerate(parts.attention):
        node.input[3] = node.input[4] = ""  # no past_key, past_value: the whole sequence at once
        while len(node.output) <= QK_OUTPUT:
            node.output.append("")
        node.output[QK_OUTPUT] = f"/probe/attention.{layer}/probs"  # (B, heads, seq, seq)
        rows.append(f"/probe/attention.{layer}/rows")
        nodes.append(helper.make_node(
            "Gather", [node.output[QK_OUTPUT], "positions"], [rows[-1]], axis=2
        ))  # fmt: skip
    return nodes, rows


def build_q4_probe(chat_path: Path, out_path: Path | None = None) -> dict:
    """Write the probe of the fused chat graph `chat_path` (e.g. onnx/model_q4.onnx) as
    `out_path` (default: probe_model.onnx beside it), reading `chat_path`'s external data file in
    place. Returns the report's `probe` section (file, bytes, what it shares). Raises
    ExportError for a graph that is not a fused GroupQueryAttention graph with external data."""
    started = time.perf_counter()
    out_path = out_path or chat_path.with_name(PROBE_FILE)
    if out_path.parent.resolve() != chat_path.parent.resolve():
        raise ExportError("the probe must sit beside the chat graph whose data file it reads")
    if not chat_path.is_file():
        raise ExportError(f"no chat graph at {chat_path}")
    model = onnx.load(str(chat_path), load_external_data=False)
    graph = model.graph
    shared = {
        entry.value
        for tensor in graph.initializer
        if tensor.data_location == TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    if not shared:
        raise ExportError(f"{chat_path.name} keeps no weights in an external data file")
    parts = find_parts(graph)
    heads = _set_attention(parts)
    norm_weight = parts.final_norm.input[2]
    epsilon = next(
        (helper.get_attribute_value(a) for a in parts.final_norm.attribute if a.name == "epsilon"),
        1e-5,
    )
    # drop the chat graph's own lm_head: its logits (the last position's) are not an output
    head_ids = {id(n) for n in parts.head_nodes}
    keep = [n for n in graph.node if id(n) not in head_ids]
    keep = [n for n in keep if not (n.op_type == "Slice" and parts.head_input in n.output)]
    new_nodes = _mask_nodes()
    attention_nodes, attention_rows = _attention_nodes(parts)
    new_nodes_after = attention_nodes + stack("attentions", attention_rows, "attention")
    lens_in_nodes, lens_in = lens_inputs(parts, norm_weight, float(epsilon))
    hidden = int(next(t.dims[0] for t in graph.initializer if t.name == norm_weight))
    new_nodes_after += lens_in_nodes + lens_nodes(parts, lens_in)
    del graph.node[:]
    graph.node.extend(new_nodes + keep + new_nodes_after)
    graph.initializer.extend([
        numpy_helper.from_array(np.array([LENS_TOP_K], np.int64), "/probe/lens_k"),
        numpy_helper.from_array(np.array([0], np.int64), "/probe/axis0"),
        numpy_helper.from_array(np.array([-1], np.int64), "/probe/axis_last"),
        numpy_helper.from_array(np.array([1, -1, hidden], np.int64), "/probe/flat_shape"),
        numpy_helper.from_array(np.array([MERGED_ROWS], np.int64), "/probe/merged_rows"),
        *(
            numpy_helper.from_array(np.array(layer, np.int64), f"/probe/layer.{layer}")
            for layer in range(len(parts.residuals))
        ),
    ])  # fmt: skip
    _set_io(graph)
    _drop_unused(graph)
    _mark(model, layers=len(parts.attention), heads=heads, data=sorted(shared))
    onnx.save_model(model, str(out_path))
    return {
        "file": f"onnx/{out_path.name}",
        "bytes": out_path.stat().st_size,
        "shared_with": sorted(shared),
        "shared_bytes": sum((chat_path.parent / name).stat().st_size for name in shared),
        "form": "from the 4-bit chat graph (probe_q4.py)",
        "export_s": round(time.perf_counter() - started, 2),
        "lens_top_k": LENS_TOP_K,
    }


def _set_attention(parts: ChatParts) -> int:
    """Set qk_output=2 on every GroupQueryAttention (its probabilities as output 3); returns
    num_heads."""
    heads = 0
    for node in parts.attention:
        kept = [a for a in node.attribute if a.name != "qk_output"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("qk_output", AFTER_SOFTMAX)])
        heads = next(helper.get_attribute_value(a) for a in kept if a.name == "num_heads")
    return int(heads)


def _mask_nodes() -> list[onnx.NodeProto]:
    """`attention_mask` (the chat graph's input, now made here): ones int64[batch, seq]."""
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    return [
        helper.make_node("Shape", ["input_ids"], ["/probe/ids_shape"]),
        helper.make_node("ConstantOfShape", ["/probe/ids_shape"], ["attention_mask"], value=one),
    ]


def _set_io(graph: onnx.GraphProto) -> None:
    ids = next(i for i in graph.input if i.name == "input_ids")
    del graph.input[:]
    graph.input.extend([
        ids,
        helper.make_tensor_value_info("positions", TensorProto.INT64, ["rows"]),
    ])  # fmt: skip
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info(
            "attentions", TensorProto.FLOAT, [None, "batch_size", None, "rows", "sequence_length"]
        ),
        helper.make_tensor_value_info(
            "lens_logprobs", TensorProto.FLOAT, [None, "batch_size", "rows", LENS_TOP_K]
        ),
        helper.make_tensor_value_info(
            "lens_ids", TensorProto.INT64, [None, "batch_size", "rows", LENS_TOP_K]
        ),
    ])  # fmt: skip
    assert tuple(i.name for i in graph.input) == INPUTS
    assert tuple(o.name for o in graph.output) == OUTPUTS
    del graph.value_info[:]


def _read(nodes: Sequence[onnx.NodeProto]) -> set[str]:
    """Every tensor name `nodes` read, in their subgraphs (If branches) too."""
    names: set[str] = set()
    for node in nodes:
        names.update(node.input)
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                names |= _read(attribute.g.node)
    return names


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove nodes nothing reads (the presents' consumers are gone, the past's mask math stays
    used) and initializers no node reads."""
    while True:
        used = _read(graph.node) | {o.name for o in graph.output}
        live = [n for n in graph.node if any(o in used for o in n.output if o)]
        if len(live) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(live)
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _mark(model: onnx.ModelProto, *, layers: int, heads: int, data: list[str]) -> None:
    """The probe's facts in the metadata (the engine reads layers, heads, lens_top_k)."""
    facts = {
        "tokenglass_probe": "1",
        "kind": "decoder",
        "layers": str(layers),
        "heads": str(heads),
        "lens_top_k": str(LENS_TOP_K),
        "weights": ",".join(data),
        "form": "q4",
    }
    del model.metadata_props[:]
    helper.set_model_props(model, facts)


def check_q4_probe(probe_path: Path, chat_path: Path, ids: Sequence[int]) -> dict:
    """The probe on `ids` against the chat graph fed the same ids one at a time through its KV
    cache (how the app reads a reply): at every position the last layer's lens has the chat
    graph's top-1, and its log-probabilities are within 1e-3 of log_softmax(chat logits); every
    attention row sums to 1 within 1e-4. Returns those figures; raises ExportError past them."""
    import onnxruntime as ort

    from .check import OnnxDecoder, logits_each, make_session

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    probe = ort.InferenceSession(str(probe_path), options, providers=["CPUExecutionProvider"])
    feeds = {
        "input_ids": np.asarray([ids], np.int64),  # (1, seq)
        "positions": np.arange(len(ids), dtype=np.int64),  # (seq,)
    }
    attentions, lens_logprobs, lens_ids = probe.run(None, feeds)
    logits = logits_each(OnnxDecoder(make_session(chat_path)), list(ids))  # (seq, vocab)
    shifted = logits - logits.max(-1, keepdims=True)
    logprobs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))  # (seq, vocab)
    want = np.take_along_axis(logprobs, lens_ids[-1, 0], axis=-1)  # (seq, k)
    lens_diff = float(np.abs(lens_logprobs[-1, 0] - want).max())
    top1_equal = bool((lens_ids[-1, 0, :, 0] == logits.argmax(-1)).all())
    row_sum_diff = float(np.abs(attentions.sum(-1) - 1.0).max())
    if lens_diff > 1e-3 or not top1_equal or row_sum_diff > 1e-4:
        raise ExportError(
            f"the probe graph differs from {chat_path.name}: last-layer log-probs by "
            f"{lens_diff:.1e} (limit 1e-3), top-1 equal {top1_equal}, attention rows sum to 1 "
            f"within {row_sum_diff:.1e} (limit 1e-4)"
        )
    return {
        "positions": len(ids),
        "against": chat_path.name,
        "lens_last_layer_max_abs_diff": lens_diff,
        "top1_equal": top1_equal,
        "attention_row_sum_max_abs_diff": row_sum_diff,
    }
