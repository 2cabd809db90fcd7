"""The fused default graph: a GGUF's Q4_1 blocks carried into onnxruntime-genai's float32 graph
(GroupQueryAttention, fused RMSNorm, packed Q/K/V), on a tiny Llama GGUF whose head size (16)
the CPU GroupQueryAttention kernel accepts; and the tied Q8_0 lm_head's rescored form."""

from __future__ import annotations

import collections

import numpy as np
import onnx

from model_export.check import OnnxDecoder, logits_each, make_session
from model_export.fused_graph import GRAPH_FORM, fused_available
from model_export.gguf_carry import Q4_1, Q8_0, carry_gguf_weights
from tests.fixtures.common import assert_rescored

IDS = [1, 10, 20, 30, 40, 50, 60, 70]


def test_q4_variant_is_the_fused_graph_with_every_block_carried(fused_export):
    out, report = fused_export
    quantized = report["quantized"]
    assert quantized["graph"] == GRAPH_FORM
    # 2 layers x (packed q/k/v, o, packed gate+up, down): packed rows come from several tensors
    assert quantized["matmuls"]["Q4_1"] == 8
    assert quantized["packed_matmuls"] == 2  # gate and up read one input: one MatMul + Split
    assert quantized["top1_agreement"] == 1.0
    assert quantized["greedy_equal"] is True
    assert "fused_rejected" not in quantized and "fused_unavailable" not in quantized
    assert quantized["matmuls"]["Q8_0"] == 1  # the tied lm_head, rescored
    assert quantized["embedding_tied_to_lm_head"] is False  # the lm_head is no float32 MatMul
    assert not list(out.rglob(".fused-*"))
    # the weights in one data file beside the graph, which ONNX Runtime maps instead of copying
    assert [p.name for p in out.rglob("*.data")] == ["model_q4.onnx.data"]
    graph = onnx.load(str(out / "onnx" / "model_q4.onnx")).graph
    ops = collections.Counter(n.op_type for n in graph.node)
    assert ops["GroupQueryAttention"] == 2 and ops["SkipSimplifiedLayerNormalization"] >= 3
    tables = {i.name: i for i in graph.initializer if list(i.dims) in ([400, 64], [64, 400])}
    # no float32 embedding table: the GGUF's 8-bit codes and block scales instead
    assert [t.data_type for t in tables.values()] == [onnx.TensorProto.UINT8]
    (codes,) = tables
    scales = next(i for i in graph.initializer if list(i.dims) == [400, 2])  # (vocab, 64/32)
    gathers = [n for n in graph.node if n.op_type == "GatherBlockQuantized"]
    assert len(gathers) == 2 and quantized["quantized_gathers"] == 2  # embedding and rescoring
    assert all(list(n.input[::2]) == [codes, scales.name] for n in gathers)
    (head,) = [
        n for n in graph.node
        if n.op_type == "MatMulNBits" and any(a.name == "bits" and a.i == 8 for a in n.attribute)
    ]  # fmt: skip
    assert head.input[2] == scales.name  # one copy of the Q8_0 scales: lm_head and gathers
    assert ops["MatMulNBits"] == 8 + 1 and ops["Split"] == 2
    assert ops["MatMul"] == 8  # one minima term per Q4_1 MatMul; none is float32 otherwise
    assert ops["TopK"] == ops["Einsum"] == ops["ScatterElements"] == 1
    # block sums once per distinct input (q/k/v, o, gate+up, down), plus the mask's ReduceSum
    assert ops["ReduceSum"] == 2 * 4 + 1
    # the app's loop may keep one buffer per layer as both past and present
    props = {p.key: p.value for p in onnx.load(str(out / "onnx" / "model_q4.onnx")).metadata_props}
    assert props["past_present_share_buffer"] == "1" and quantized["past_present_share_buffer"]
    # Q4_1 codes use MatMulNBits' default zero point 8 (no zero-point input)
    assert all(len(n.input) == 3 for n in graph.node if n.op_type == "MatMulNBits")


def test_fused_graph_keeps_the_io_contract(fused_export):
    out, _ = fused_export
    graph = onnx.load(str(out / "onnx" / "model_q4.onnx"), load_external_data=False).graph
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    assert inputs[:2] == ["input_ids", "attention_mask"]
    assert "position_ids" not in inputs  # GroupQueryAttention takes positions from the mask
    assert inputs[2:] == [f"past_key_values.{i}.{kv}" for i in range(2) for kv in ("key", "value")]
    assert outputs == ["logits"] + [
        f"present.{i}.{kv}" for i in range(2) for kv in ("key", "value")
    ]


def test_fused_q4_logits_match_fp32_through_the_kv_cache(fused_export):
    out, _ = fused_export
    fp32 = OnnxDecoder(make_session(out / "onnx" / "model.onnx"))
    q4 = OnnxDecoder(make_session(out / "onnx" / "model_q4.onnx"))
    fp32_rows = fp32.forward(IDS)  # (8, vocab)
    last = q4.forward(IDS)  # empty past: the last position's logits only, (1, vocab)
    assert_rescored(last, fp32_rows[-1:])
    assert_rescored(logits_each(q4, IDS), fp32_rows)  # every position, through the cache
    for token in (5, 6, 7):  # decode steps on the cache
        assert_rescored(q4.forward([token]), fp32.forward([token]))


def test_every_matmul_exact_when_the_lm_head_stays_float32(fused_export, wide_llama_gguf, tmp_path):
    out, _ = fused_export
    target = tmp_path / "fp32-head.onnx"
    counts = carry_gguf_weights(
        out / "onnx" / "model.onnx", wide_llama_gguf, target, levels={Q4_1: 0, Q8_0: None}
    )
    assert counts[Q4_1] == 2 * 7 and counts[Q8_0] == 0  # optimum graph: q, k, v, o, gate, up, down
    fp32 = OnnxDecoder(make_session(out / "onnx" / "model.onnx")).forward(IDS)  # (8, vocab)
    carried = OnnxDecoder(make_session(target)).forward(IDS)  # (8, vocab)
    np.testing.assert_allclose(carried, fp32, atol=1e-4)


def test_fused_graph_is_refused_for_a_head_size_gqa_cannot_run(tiny_llama_gguf):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        tiny_llama_gguf.parent, gguf_file=tiny_llama_gguf.name
    )
    assert "multiple of 16, not 8" in fused_available(model)


def test_quantized_gather_equals_the_float32_rows_bit_for_bit():
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from model_export.gguf_carry import QuantizedTensor, quantize_gathers

    rng = np.random.default_rng(0)
    signed = rng.integers(-128, 128, (50, 64)).astype(np.int8)  # (N, K) Q8_0 codes
    scales = rng.random((50, 2)).astype(np.float16).astype(np.float32)  # (N, K/32), GGUF fp16
    table = np.repeat(scales, 32, axis=1) * signed.astype(np.float32)  # (N, K)
    codes = (signed.astype(np.int16) + 128).astype(np.uint8)
    tensor = QuantizedTensor("token_embd.weight", Q8_0, codes, scales, None, table)
    perm = rng.permutation(50)  # the graph's row order differs from the GGUF's
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "ids"], ["rows"], axis=0)],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s", "t"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(table[perm], "E")],
    )
    assert quantize_gathers(graph, "E", tensor, perm) == 1
    assert [i.name for i in graph.initializer] == ["E.q8_codes", "E.q8_scales"]  # E dropped
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = rng.integers(0, 50, (1, 3, 4))  # (B, S, top), the rescoring's shape
    (rows,) = session.run(None, {"ids": ids})  # (1, 3, 4, 64)
    np.testing.assert_array_equal(rows, table[perm][ids])
