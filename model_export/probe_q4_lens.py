"""The logit lens of the probe made from a fused 4-bit chat graph (probe_q4.py makes the rest).

Each layer's residual stream at the rows `positions` goes through the chat graph's own final norm
(weight and epsilon) and its own lm_head nodes, cloned to read those rows (the same initializers:
nothing is copied), then LogSoftmax and TopK(LENS_TOP_K):

    residual after layer l < L ─ Gather(rows) ─ final norm ─┐
    final norm's output (layer L) ─ Gather(rows) ───────────┴─ Concat ─ lens_in [L, B, rows, H]
    If L x B x rows <= MERGED_ROWS:
        Reshape [1, n, H] ─ lm_head ─ LogSoftmax ─ TopK ─ Reshape [L, B, rows, k]
    else, per layer l:
        Gather(l) [B, rows, H] ─ lm_head ─ LogSoftmax ─ TopK ─ Unsqueeze ─ Concat [L, B, rows, k]
    -> lens_logprobs float32[L, B, rows, k], lens_ids int64[L, B, rows, k]

The rescored head's exact-logit Einsum becomes a batched MatMul (the same dot products; see
_as_matmul). Knows nothing about attention, files or the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import onnx
from onnx import TensorProto, helper

if TYPE_CHECKING:
    from .probe_q4 import ChatParts


def _clone_head(parts: ChatParts, x: str, prefix: str) -> tuple[list[onnx.NodeProto], str]:
    """The lm_head's nodes reading `x` instead, every tensor they make renamed under `prefix`;
    returns (nodes, logits tensor). Initializers are shared, not copied."""
    renamed: dict[str, str] = {parts.head_input: x}
    nodes = []
    for node in parts.head_nodes:
        clone = onnx.NodeProto()
        clone.CopyFrom(node)
        clone.name = f"{prefix}/{node.name or node.op_type}"
        for i, name in enumerate(clone.input):
            clone.input[i] = renamed.get(name, name)
        for i, name in enumerate(clone.output):
            if name:
                renamed[name] = clone.output[i] = f"{prefix}/{name}"
        nodes += _as_matmul(clone) if _is_row_dots(clone) else [clone]
    return nodes, renamed[parts.logits]


ROW_DOTS = "bsk,bstk->bst"  # the rescored head's exact logits: x · E[top id] per position


def _is_row_dots(node: onnx.NodeProto) -> bool:
    equation = next((a.s for a in node.attribute if a.name == "equation"), b"")
    return node.op_type == "Einsum" and equation.decode() == ROW_DOTS


def _as_matmul(node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """Einsum(bsk,bstk->bst) as a batched MatMul: the same dot products, but ONNX Runtime's
    Einsum took 1.8 s of a 20 s probe run over 154 rows x 30 layers (the chat graph runs it on
    one position, where it costs nothing); as MatMul, milliseconds.

      x (B, S, K) ─ Unsqueeze(-1) ─ (B, S, K, 1) ─┐
      rows (B, S, T, K) ─────────────────── MatMul ─ (B, S, T, 1) ─ Squeeze(-1) ─ (B, S, T)
    """
    x, rows = node.input
    column, dots = f"{node.name}/column", f"{node.name}/dots"
    return [
        helper.make_node("Unsqueeze", [x, "/probe/axis_last"], [column]),
        helper.make_node("MatMul", [rows, column], [dots], name=f"{node.name}/MatMul"),
        helper.make_node("Squeeze", [dots, "/probe/axis_last"], list(node.output)),
    ]


MERGED_ROWS = 256
"""At most this many lens rows (layers x batch x rows) go through one lm_head together; more
go layer by layer. One lm_head over all layers' rows reads the 28 MB of 8-bit codes once instead
of once per layer (the last row's lens for 30 layers: 64 instead of 108 ms of lm_head, measured
alone on this machine), while its [rows, vocab] tensors stay under 50 MB each (256 x 49152 x 4 B);
past it, layer by layer keeps them at [rows, vocab] for one layer."""


def lens_inputs(
    parts: ChatParts, norm_weight: str, epsilon: float
) -> tuple[list[onnx.NodeProto], str]:
    """Each layer's residual stream at the rows `positions`, through the final norm (the same
    weight and epsilon as the chat graph's; the last layer's residual is that norm's output):
    (nodes, tensor float32[layers, B, rows, hidden])."""
    nodes, normed = [], []
    for layer, residual in enumerate(parts.residuals):
        p = f"/probe/lens.{layer}"
        rows = f"{p}/rows"  # (B, rows, hidden)
        nodes.append(helper.make_node("Gather", [residual, "positions"], [rows], axis=1))
        if layer < len(parts.residuals) - 1:
            nodes.append(helper.make_node(
                "SimplifiedLayerNormalization", [rows, norm_weight], [f"{p}/normed"],
                name=f"{p}/final_norm", axis=-1, epsilon=epsilon, stash_type=1,
            ))  # fmt: skip
            rows = f"{p}/normed"
        normed.append(rows)
    return nodes + stack("/probe/lens_in", normed, "lens_in"), "/probe/lens_in"


def _top(parts: ChatParts, x: str, p: str) -> tuple[list[onnx.NodeProto], str, str]:
    """The chat graph's lm_head on x (B, n, hidden), then the top LENS_TOP_K log-probabilities:
    (nodes, values (B, n, k), ids (B, n, k)), best first."""
    head, logits = _clone_head(parts, x, f"{p}/head")  # (B, n, vocab)
    return (
        [
            *head,
            helper.make_node("LogSoftmax", [logits], [f"{p}/logprobs"], axis=-1),
            helper.make_node(
                "TopK", [f"{p}/logprobs", "/probe/lens_k"], [f"{p}/top", f"{p}/ids"], axis=-1
            ),
        ],
        f"{p}/top",
        f"{p}/ids",
    )


def _branch(name: str, nodes: list[onnx.NodeProto], values: str, ids: str) -> onnx.GraphProto:
    outputs = [
        helper.make_tensor_value_info(values, TensorProto.FLOAT, None),
        helper.make_tensor_value_info(ids, TensorProto.INT64, None),
    ]
    return helper.make_graph(nodes, name, [], outputs)


def lens_nodes(parts: ChatParts, lens_in: str) -> list[onnx.NodeProto]:
    """lens_logprobs and lens_ids [layers, B, rows, k] from lens_in [layers, B, rows, hidden]:
    one lm_head over all rows when they are at most MERGED_ROWS, else one per layer (an If)."""
    merged = "/probe/lens.merged"
    flat = [helper.make_node("Reshape", [lens_in, "/probe/flat_shape"], [f"{merged}/x"])]
    top_nodes, values, ids = _top(parts, f"{merged}/x", merged)  # (1, layers*B*rows, k)
    flat += [
        *top_nodes,
        helper.make_node("Reshape", [values, "/probe/lens_shape"], [f"{merged}/lens_values"]),
        helper.make_node("Reshape", [ids, "/probe/lens_shape"], [f"{merged}/lens_ids"]),
    ]
    each: list[onnx.NodeProto] = []
    all_values, all_ids = [], []
    for layer in range(len(parts.residuals)):
        p = f"/probe/lens.{layer}"
        index = f"/probe/layer.{layer}"
        each.append(helper.make_node("Gather", [lens_in, index], [f"{p}/x"], axis=0))
        top_nodes, values, ids = _top(parts, f"{p}/x", p)  # (B, rows, k)
        each += top_nodes
        all_values.append(values)
        all_ids.append(ids)
    each += stack("/probe/lens.each/values", all_values, "lens_values")
    each += stack("/probe/lens.each/ids", all_ids, "lens_ids")
    shape = "/probe/lens_in_shape"
    return [
        helper.make_node("Shape", [lens_in], [shape], end=3),  # [layers, B, rows]
        helper.make_node("Concat", [shape, "/probe/lens_k"], ["/probe/lens_shape"], axis=0),
        helper.make_node("ReduceProd", [shape], ["/probe/lens_rows"], keepdims=1),
        helper.make_node(
            "LessOrEqual", ["/probe/lens_rows", "/probe/merged_rows"], ["/probe/merged"]
        ),
        helper.make_node(
            "If", ["/probe/merged"], ["lens_logprobs", "lens_ids"], name="/probe/lens",
            then_branch=_branch("merged", flat, f"{merged}/lens_values", f"{merged}/lens_ids"),
            else_branch=_branch(
                "each_layer", each, "/probe/lens.each/values", "/probe/lens.each/ids"
            ),
        ),
    ]  # fmt: skip


def stack(name: str, parts: list[str], tag: str) -> list[onnx.NodeProto]:
    """Unsqueeze each [...] to [1, ...] and Concat on axis 0 into graph output `name`."""
    nodes, lifted = [], []
    for i, part in enumerate(parts):
        lifted.append(f"/probe/{tag}.{i}/lifted")
        nodes.append(helper.make_node("Unsqueeze", [part, "/probe/axis0"], [lifted[-1]]))
    nodes.append(helper.make_node("Concat", lifted, [name], axis=0))
    return nodes
