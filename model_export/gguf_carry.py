"""Carry a GGUF's quantized weights into the ONNX graph: Q4_1 and Q8_0 to MatMulNBits.

transformers dequantizes a GGUF to float32 before the export, so the fp32 graph computes with
w = d*q + m exactly. Re-quantizing those weights (symmetric int4, dynamic int8) changes greedy
output after a few tokens; carrying the GGUF's own codes does not. For every MatMul whose weight
equals a dequantized GGUF tensor row for row (rows may be permuted: transformers undoes llama.cpp's
rope permutation of q/k; a packed Q/K/V weight stacks rows of three tensors), this writes:

    Q4_1 (32 weights per block, w = d*q + m = d*(q - 8) + (m + 8d), q in 0..15), exact:

      x ──┬─ MatMulNBits(bits=4, codes q, scales d, default zero point 8) ─┐
          │                                                                Add ── y
          └─ Reshape[.., K/32, 32] ─ ReduceSum ─ MatMul((m + 8d)ᵀ) ────────┘

    Q8_0 (w = d*q, q in -128..127) as RESCORED, the lm_head's form (see _rescored_nodes), on
    the last position only (x = Slice(hidden)[:, -1:]):

      x ─ MatMulNBits(bits=8, codes q+128, scales d, accuracy_level 4) ─ approx ─┬───────────┐
      │                                        TopK(64) ─ ids ─ Gather(E rows) ─ Einsum(x) ─ │
      └───────────────────────────────────────────────────────────┘   ScatterElements ── y

    and every Gather of E's rows (the rescoring's, the tied embedding's) then reads the Q8_0
    codes instead of a float32 E (quantize_gathers: GatherBlockQuantized, bit-exact).

The minimum term is exact algebra: sum_k x_k * m_b over block b is m_b * (block sum of x); with
the kernel's default zero point 8 folded into it (m + 8d is exact in float32 for float16 m and d),
the MatMulNBits needs no zero-point input (a smaller graph; no slower than explicit zero points
of 0, and about 3% faster in one comparison, within this machine's noise). The sources are the
GGUF block layouts in gguf-py (gguf/quants.py, Q4_1 and Q8_0) and the MatMulNBits contrib op
(onnxruntime docs/ContribOperators.md): B uint8[N, K/32, 32*bits/8] with element 2i in the low
nibble of byte i, scales float[N * K/32], zero points packed uint4 (absent: 2^(bits-1)).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

BLOCK = 32
Q4_1, Q8_0 = "Q4_1", "Q8_0"


@dataclass(frozen=True)
class QuantizedTensor:
    """One GGUF tensor's blocks: codes uint8[N, K] (Q8_0: stored as q+128), scales float32[N, K/32],
    minima float32[N, K/32] (Q4_1 only), and its exact float32 dequantization [N, K]."""

    name: str
    kind: str
    codes: np.ndarray
    scales: np.ndarray
    minima: np.ndarray | None
    dequantized: np.ndarray


def _unpack(name: str, kind: str, raw: np.ndarray, n: int, k: int) -> QuantizedTensor:
    blocks = raw.reshape(n, k // BLOCK, -1)  # (N, K/32, bytes per block)
    scales = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)  # (N, K/32)
    if kind == Q4_1:
        minima = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)  # (N, K/32)
        qs = blocks[..., 4:20]  # (N, K/32, 16): low nibbles are weights 0..15, high are 16..31
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # (N, K/32, 32)
        deq = scales[..., None] * codes.astype(np.float32) + minima[..., None]
        return QuantizedTensor(name, kind, codes.reshape(n, k), scales, minima, deq.reshape(n, k))
    signed = blocks[..., 2:34].copy().view(np.int8)  # (N, K/32, 32)
    deq = scales[..., None] * signed.astype(np.float32)
    codes = (signed.astype(np.int16) + 128).astype(np.uint8)
    return QuantizedTensor(name, kind, codes.reshape(n, k), scales, None, deq.reshape(n, k))


def read_quantized_tensors(gguf_path: Path) -> list[QuantizedTensor]:
    """Every Q4_1 and Q8_0 matrix of the GGUF, unpacked."""
    from gguf import GGUFReader

    tensors = []
    for tensor in GGUFReader(str(gguf_path)).tensors:
        kind = tensor.tensor_type.name
        if kind not in (Q4_1, Q8_0) or len(tensor.shape) != 2:
            continue
        k, n = (int(d) for d in tensor.shape)  # GGUF lists the fastest dimension first
        tensors.append(_unpack(tensor.name, kind, np.asarray(tensor.data), n, k))
    return tensors


def _row_key(row: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()


class RowIndex:
    """Finds, for a float32 weight [N, K], the GGUF tensor and row order it dequantizes from."""

    def __init__(self, tensors: list[QuantizedTensor]) -> None:
        self.tensors = tensors
        self.rows: dict[bytes, tuple[int, int]] = {}
        for t_idx, tensor in enumerate(tensors):
            for r_idx, row in enumerate(tensor.dequantized):
                self.rows.setdefault(_row_key(row), (t_idx, r_idx))

    def match(self, weight: np.ndarray) -> tuple[QuantizedTensor, np.ndarray] | None:
        """(tensor, row order int64[N]) when every row of `weight` [N, K] equals a row of a GGUF
        tensor (rows may repeat: e.g. unused tokens' embeddings); else None. Rows may come from
        several tensors of one kind and width (a packed Q/K/V MatMul stacks q, k and v): the
        tensor returned is then those rows gathered into one, with the identity row order."""
        hits = [self.rows.get(_row_key(row)) for row in weight]
        if not hits or any(h is None for h in hits):
            return None
        owners = sorted({h[0] for h in hits})
        if len(owners) == 1:
            tensor = self.tensors[owners[0]]
            perm = np.array([h[1] for h in hits], np.int64)
        else:
            tensor = self._gather(hits)
            if tensor is None:
                return None
            perm = np.arange(len(hits), dtype=np.int64)
        if tensor.codes.shape[1] != weight.shape[1] or not np.array_equal(
            tensor.dequantized[perm], weight
        ):
            return None
        return tensor, perm

    def _gather(self, hits: list[tuple[int, int]]) -> QuantizedTensor | None:
        """One QuantizedTensor of the rows `hits` [(tensor, row)] from tensors of one kind."""
        parts = [self.tensors[t] for t, _ in hits]
        if len({(p.kind, p.codes.shape[1]) for p in parts}) != 1:
            return None
        t_idx = np.array([t for t, _ in hits])
        r_idx = np.array([r for _, r in hits])

        def take(field: str) -> np.ndarray:
            rows = np.empty((len(hits), getattr(parts[0], field).shape[1]), np.float32)
            for t in np.unique(t_idx):
                sel = t_idx == t
                rows[sel] = getattr(self.tensors[t], field)[r_idx[sel]]
            return rows

        codes = take("codes").astype(np.uint8)
        minima = take("minima") if parts[0].minima is not None else None
        name = "+".join(dict.fromkeys(p.name for p in parts))
        return QuantizedTensor(
            name, parts[0].kind, codes, take("scales"), minima, take("dequantized")
        )


def _pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """uint8[N, K] codes -> MatMulNBits B uint8[N, K/32, 32*bits/8]."""
    n, k = codes.shape
    blocks = codes.reshape(n, k // BLOCK, BLOCK)  # (N, K/32, 32)
    if bits == 8:
        return blocks
    return (blocks[..., 0::2] | (blocks[..., 1::2] << 4)).astype(np.uint8)  # (N, K/32, 16)


def _nbits_nodes(
    node: onnx.NodeProto,
    tensor: QuantizedTensor,
    perm: np.ndarray,
    accuracy_level: int,
    block_sums: dict[str, str] | None = None,
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The nodes and initializers that replace MatMul `node` (see the module diagram).
    `block_sums` maps an input name to its block sums already computed upstream (MatMuls on one
    input, like gate and up, share them); it gains this node's input when new."""
    x, y, base = node.input[0], node.output[0], node.name or node.output[0]
    n, k = tensor.codes.shape
    bits = 4 if tensor.kind == Q4_1 else 8
    codes, scales = tensor.codes[perm], tensor.scales[perm]  # (N, K), (N, K/32)
    inits = [
        numpy_helper.from_array(_pack(codes, bits), f"{base}.nbits_B"),
        numpy_helper.from_array(scales.reshape(-1), f"{base}.nbits_scales"),
    ]
    nbits_inputs = [x, inits[0].name, inits[1].name]  # no zero points: 8 (4-bit), 128 (8-bit)
    out = f"{base}.nbits_out" if tensor.minima is not None else y
    nodes = [
        helper.make_node(
            "MatMulNBits", nbits_inputs, [out], name=f"{base}.nbits", domain="com.microsoft",
            K=k, N=n, bits=bits, block_size=BLOCK, accuracy_level=accuracy_level,
        )
    ]  # fmt: skip
    if tensor.minima is None:
        return nodes, inits
    # d*q + m = d*(q - 8) + (m + 8d): the default zero point 8 moves into the minimum term
    minima_t = np.ascontiguousarray((tensor.minima[perm] + 8.0 * scales).T)  # (K/32, N)
    inits.append(numpy_helper.from_array(minima_t, f"{base}.minima_T"))
    block_sums = {} if block_sums is None else block_sums
    if x not in block_sums:
        block_sums[x] = f"{base}.block_sums"
        inits += [
            numpy_helper.from_array(np.array([0, 0, -1, BLOCK], np.int64), f"{base}.blk_shape"),
            numpy_helper.from_array(np.array([-1], np.int64), f"{base}.blk_axis"),
        ]
        nodes += [
            helper.make_node("Reshape", [x, f"{base}.blk_shape"], [f"{base}.blocks"]),
            helper.make_node(
                "ReduceSum", [f"{base}.blocks", f"{base}.blk_axis"], [block_sums[x]], keepdims=0
            ),  # (B, S, K/32, 32) -> (B, S, K/32)
        ]
    nodes += [
        helper.make_node("MatMul", [block_sums[x], f"{base}.minima_T"], [f"{base}.min_term"]),
        helper.make_node("Add", [out, f"{base}.min_term"], [y]),  # (B, S, N)
    ]
    return nodes, inits


RESCORE_TOP = 64
"""Logits recomputed exactly per position by the RESCORED form. Measured on SmolLM2-135M's lm_head
(400 positions of text): the int8-activation logits differ from float32 by at most 0.55 (median
0.04), the float32 top-1 is never below rank 1 in them, and the float32 top-1 leads the 65th
logit by at least 2.3; so the true top-64, greedy choice included, is always among those
recomputed."""


def _rescored_nodes(
    node: onnx.NodeProto, tensor: QuantizedTensor, perm: np.ndarray, rows: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """A Q8_0 lm_head as fast approximate logits with its top RESCORE_TOP recomputed exactly.

    The MatMulNBits on the GGUF's own 8-bit codes at accuracy_level 4 (activations quantized to
    int8 per block, as llama.cpp's Q8_0 kernel also does) gives every logit about 2.5x faster
    than float32 (1.5 vs 3.9 ms per step for 576 x 49152 in an ONNX Runtime profile), but alone
    it changed this model's greedy output on 3 of 5 prompts (at tokens 0, 1 and 9). So the
    RESCORE_TOP highest of those logits are recomputed as float32 dot products with the float32
    rows `rows` (an initializer float32[N, K], the tied embedding table when there is one) and
    written back in place: the top of the distribution, greedy choice and top-k alternatives
    included, equals the float32 graph's; the tail keeps the int8-activation values.

    Only the last position's logits are computed (`logits` float32[B, 1, N]): a run's next token
    needs no others, and over a prompt of S tokens the lm_head would otherwise cost S rows of
    N x K and two float32[B, S, N] tensors (50 MB each for a 256-token chunk of SmolLM2-135M).
    """
    x_all, y, base = node.input[0], node.output[0], node.name or node.output[0]
    n, k = tensor.codes.shape
    top = min(RESCORE_TOP, n)
    approx = f"{base}.approx"  # (B, 1, N)
    x = f"{base}.last_position"  # (B, 1, K)
    inits = [
        numpy_helper.from_array(_pack(tensor.codes[perm], 8), f"{base}.nbits_B"),
        # [N, K/32], named as quantize_gathers names the row table's scales: one initializer
        # for both (MatMulNBits also takes its scales as [N, K/32])
        numpy_helper.from_array(np.ascontiguousarray(tensor.scales[perm]), f"{rows}.q8_scales"),
        numpy_helper.from_array(np.array([top], np.int64), f"{base}.rescore_k"),
        numpy_helper.from_array(np.array([-1], np.int64), f"{base}.last_start"),
        numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), f"{base}.last_end"),
        numpy_helper.from_array(np.array([1], np.int64), f"{base}.seq_axis"),
    ]
    nodes = [
        helper.make_node(
            "Slice", [x_all, inits[3].name, inits[4].name, inits[5].name], [x], name=f"{base}.last"
        ),  # (B, S, K) -> (B, 1, K)
        helper.make_node(
            "MatMulNBits", [x, inits[0].name, inits[1].name], [approx], name=f"{base}.nbits",
            domain="com.microsoft", K=k, N=n, bits=8, block_size=BLOCK, accuracy_level=4,
        ),
        helper.make_node(
            "TopK", [approx, inits[2].name], [f"{base}.top_values", f"{base}.top_ids"],
            axis=-1, sorted=0,
        ),  # ids: (B, S, top)
        helper.make_node("Gather", [rows, f"{base}.top_ids"], [f"{base}.top_rows"], axis=0),
        helper.make_node(
            "Einsum", [x, f"{base}.top_rows"], [f"{base}.top_exact"], equation="bsk,bstk->bst"
        ),  # (B, S, K) x (B, S, top, K) -> (B, S, top)
        helper.make_node(
            "ScatterElements", [approx, f"{base}.top_ids", f"{base}.top_exact"], [y], axis=-1
        ),
    ]  # fmt: skip
    return nodes, inits


def _last_position_only(graph: onnx.GraphProto, output: str) -> None:
    """Declare the graph output `output` as float32[batch, 1, vocab] (see _rescored_nodes)."""
    for value in graph.output:
        if value.name == output and len(value.type.tensor_type.shape.dim) == 3:
            value.type.tensor_type.shape.dim[1].Clear()
            value.type.tensor_type.shape.dim[1].dim_value = 1


def _rows_table(
    graph: onnx.GraphProto, tensor: QuantizedTensor, perm: np.ndarray
) -> tuple[str, onnx.TensorProto | None]:
    """The name of a float32[N, K] initializer equal to the dequantized weight (the tied
    embedding), or a new one to add (returned second)."""
    weight = tensor.dequantized[perm]  # (N, K)
    same_shape = [
        i for i in graph.initializer
        if list(i.dims) == list(weight.shape) and i.data_type == onnx.TensorProto.FLOAT
    ]  # fmt: skip
    for init in same_shape:
        if np.array_equal(numpy_helper.to_array(init), weight):
            return init.name, None
    name = f"{tensor.name}.float32_rows"
    return name, numpy_helper.from_array(weight.astype(np.float32), name)


def quantize_gathers(
    graph: onnx.GraphProto, rows: str, tensor: QuantizedTensor, perm: np.ndarray
) -> int:
    """Replace every Gather(rows, ids, axis=0) of the float32 table `rows` [N, K] (the
    dequantized Q8_0 `tensor` in row order `perm`) with GatherBlockQuantized on the GGUF's own
    8-bit codes and block scales, which dequantizes the gathered rows only:

      ids ─ Gather(E float32[N, K])  ->  ids ─ GatherBlockQuantized(q+128 uint8[N, K], d[N, K/32])

    The same float32 values (d*(q+128-128) = d*q, exact in float32 for a float16 d and 8-bit q)
    at a quarter of the memory: 28 instead of 113 MB for SmolLM2-135M's [49152, 576] table.
    The float32 table is dropped when nothing else reads it. The scales are one initializer
    with the rescored lm_head's MatMulNBits scales when that lm_head reads the same table (the
    same float32[N, K/32] values in the same row order): 3.4 MB less in the folder and in
    memory for SmolLM2-135M. Returns the count of Gathers replaced. Source: onnxruntime
    docs/ContribOperators.md, com.microsoft.GatherBlockQuantized (uint8 data with bits=8:
    default zero point 128).
    """
    gathers = [
        n for n in graph.node
        if n.op_type == "Gather" and n.input[0] == rows
        and next((a.i for a in n.attribute if a.name == "axis"), 0) == 0
    ]  # fmt: skip
    if not gathers:
        return 0
    codes, scales = f"{rows}.q8_codes", f"{rows}.q8_scales"
    graph.initializer.append(
        numpy_helper.from_array(np.ascontiguousarray(tensor.codes[perm]), codes)  # (N, K)
    )
    if not any(i.name == scales for i in graph.initializer):  # a rescored lm_head's, shared
        graph.initializer.append(
            numpy_helper.from_array(np.ascontiguousarray(tensor.scales[perm]), scales)  # (N, K/32)
        )
    for gather in gathers:
        index = list(graph.node).index(gather)
        graph.node.remove(gather)
        graph.node.insert(index, helper.make_node(
            "GatherBlockQuantized", [codes, gather.input[1], scales], list(gather.output),
            name=f"{gather.name or gather.output[0]}.q8", domain="com.microsoft",
            gather_axis=0, quantize_axis=1, block_size=BLOCK, bits=8,
        ))  # fmt: skip
    _drop_unused(graph, {rows})
    return len(gathers)


#: The form in `levels` that carries a Q8_0 matrix as int8 logits rescored exactly at the top;
#: only a MatMul that writes a graph output (the logits) takes it, other Q8_0 MatMuls stay float32.
RESCORED = "int8+rescored-top"


#: MatMulNBits accuracy_level (or form) per GGUF kind; None keeps that kind's MatMul in float32.
#: Level 0 computes in float32 (exact up to summation order); level 4 quantizes the activations
#: to int8 per block, which changed this model's greedy output from the first token on some
#: prompts, so Q4_1 stays at level 0. The Q8_0 lm_head takes RESCORED: greedy tokens equal the
#: float32 graph's, and the decode step is about 25% faster than with a float32 lm_head. (Measured
#: and dropped: Q8_0 at level 0 takes a slow path, about 275 ms for 576 x 49152; Q8_0 as two
#: exact 4-bit halves was no faster than float32.)
DEFAULT_LEVELS: dict[str, int | str | None] = {Q4_1: 0, Q8_0: RESCORED}


def carry_gguf_weights(
    model_path: Path,
    gguf_path: Path,
    out_path: Path,
    *,
    levels: dict[str, int | str | None] | None = None,
    prepare: Callable[[onnx.ModelProto], dict] | None = None,
    finish: Callable[[onnx.ModelProto], dict] | None = None,
    quantized_gathers: bool = True,
) -> dict:
    """Write `out_path`: the graph at `model_path` with every MatMul whose weight is a GGUF Q4_1
    or Q8_0 tensor replaced by MatMulNBits on the GGUF's own codes, at the accuracy level or in
    the form that `levels` gives the kind (default DEFAULT_LEVELS). `prepare` rewrites the loaded
    graph before, `finish` the carried graph after (e.g. fused_graph.prepare_fused and
    finish_fused). With `quantized_gathers`, the Gathers of a rescored lm_head's float32 row
    table (its own rescoring, and the tied embedding) read the GGUF's 8-bit codes instead
    (quantize_gathers). Returns the count of MatMuls per kind (and `quantized_gathers`), updated
    with what `prepare` and `finish` returned."""
    levels = DEFAULT_LEVELS if levels is None else levels
    model = onnx.load(str(model_path))
    prepared = prepare(model) if prepare is not None else {}
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    index = RowIndex(read_quantized_tensors(gguf_path))
    counts = {Q4_1: 0, Q8_0: 0, "kept_fp32": 0}
    new_nodes: list[onnx.NodeProto] = []
    dropped: set[str] = set()
    block_sums: dict[str, str] = {}
    tables: list[tuple[str, QuantizedTensor, np.ndarray]] = []  # rescored lm_heads' row tables
    graph_outputs = {o.name for o in graph.output}
    for node in graph.node:
        weight = _matmul_weight(node, inits, producers)
        match = index.match(weight) if weight is not None else None
        level = levels.get(match[0].kind) if match is not None else None
        if level == RESCORED and node.output[0] not in graph_outputs:
            level = None  # rescoring is for the logits; a hidden layer's Q8_0 stays float32
        if match is None or level is None:
            counts["kept_fp32"] += node.op_type == "MatMul"
            new_nodes.append(node)
            continue
        if level == RESCORED and match[0].kind == Q8_0:
            rows, table = _rows_table(graph, *match)
            nodes, extra = _rescored_nodes(node, *match, rows)
            _last_position_only(graph, node.output[0])
            extra += [table] if table is not None else []
            tables.append((rows, *match))
        else:
            nodes, extra = _nbits_nodes(node, *match, int(level), block_sums)
        counts[match[0].kind] += 1
        new_nodes += nodes
        graph.initializer.extend(extra)
        if node.input[1] in inits:
            dropped.add(node.input[1])
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused(graph, dropped)
    if quantized_gathers:
        counts["quantized_gathers"] = sum(quantize_gathers(graph, *t) for t in tables)
    finished = finish(model) if finish is not None else {}
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    save_with_external_data(model, out_path)
    return {**counts, **prepared, **finished}


def save_with_external_data(model: onnx.ModelProto, out_path: Path) -> Path:
    """Save `model` as `out_path` (the graph, 0.3 MB for SmolLM2-135M) and `out_path`.data
    (every initializer of 1 KB or more); returns the data file's path. ONNX Runtime maps the
    data file instead of copying each initializer out of a parsed protobuf, and prepacked
    weights then leave no copy behind. Measured on the default model (one session, 2 threads,
    RSS in MB, python + onnxruntime alone 62): after loading 179 instead of 247, peak while
    loading 206 instead of 274, after a 44-token prefill and 16 steps 258 instead of 281;
    `tokenglass chat` peak 281 instead of 293."""
    data = out_path.with_name(out_path.name + ".data")
    data.unlink(missing_ok=True)  # save_model appends to an existing file
    onnx.save_model(
        model, str(out_path), save_as_external_data=True, all_tensors_to_one_file=True,
        location=data.name, size_threshold=1024,
    )  # fmt: skip
    data.chmod(out_path.stat().st_mode & 0o777)  # onnx writes it 0600; readable as the graph is
    return data


def _matmul_weight(node, inits, producers) -> np.ndarray | None:
    """The float32 weight [N, K] of a MatMul(x, W[K, N]) or MatMul(x, Transpose(E[N, K]))."""
    if node.op_type != "MatMul":
        return None
    name = node.input[1]
    if name in inits and len(inits[name].dims) == 2:
        return numpy_helper.to_array(inits[name]).T  # (N, K)
    producer = producers.get(name)
    if producer is not None and producer.op_type == "Transpose" and producer.input[0] in inits:
        source = inits[producer.input[0]]
        if len(source.dims) == 2:
            return numpy_helper.to_array(source)  # (N, K)
    return None


def _drop_unused(graph: onnx.GraphProto, candidates: set[str]) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name not in candidates or i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    live = [n for n in graph.node if n.op_type != "Transpose" or any(o in used for o in n.output)]
    if len(live) != len(graph.node):
        del graph.node[:]
        graph.node.extend(live)
