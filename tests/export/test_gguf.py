"""A GGUF source end to end, on a tiny Llama written as a llama.cpp-style GGUF in the fixtures:
the tokenizer rebuilt from the GGUF metadata, fp32 parity through transformers' dequantizing
loader, and the exact carry of the Q4_1 blocks into MatMulNBits (model_q4.onnx)."""

from __future__ import annotations

import collections
import json

import onnx
import pytest

from model_export.api import export
from model_export.check import OnnxDecoder, logits_each, make_session
from model_export.gguf_carry import Q4_1, Q8_0, carry_gguf_weights
from tests.fixtures.common import assert_rescored, hf_source_dir
from tests.fixtures.decoder_models import write_tiny_llama_gguf


@pytest.fixture(scope="module")
def gguf_export(tiny_llama_gguf, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf-export") / "tiny"
    return out, export(tiny_llama_gguf, out, quantize="int4")


def test_fp32_parity_and_tokenizer(gguf_export):
    out, report = gguf_export
    assert report["from_gguf"] is True
    assert report["check"]["logits_max_abs_diff"] < 1e-3
    assert report["check"]["greedy_equal"] is True
    assert report["tokenizer_check"]["vocabulary"]["checked"] > 200
    assert report["tokenizer_check"]["vocabulary"]["mismatches"] == 0
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|im_end|>" and config["add_bos_token"] is False
    assert "<|im_start|>" in config["chat_template"]
    assert not (out / "tokenizer.model").exists()
    assert 2 in json.loads((out / "generation_config.json").read_text())["eos_token_id"]


def test_q4_carries_every_q4_1_block_exactly(gguf_export):
    out, report = gguf_export
    quantized = report["quantized"]
    assert quantized["method"] == "gguf-carry"
    # head size 8: no fused GroupQueryAttention graph, so the blocks go into optimum's graph
    assert quantized["graph"].startswith("optimum")
    assert "multiple of 16" in quantized["fused_unavailable"]
    assert quantized["matmuls"]["Q4_1"] == 14  # 2 layers x (q, k, v, o, gate, up, down)
    assert quantized["top1_agreement"] == 1.0
    assert quantized["greedy_equal"] is True
    ids = [1, 10, 20, 30, 40, 50, 60, 70]
    fp32 = OnnxDecoder(make_session(out / "onnx" / "model.onnx")).forward(ids)  # (8, vocab)
    q4_graph = OnnxDecoder(make_session(out / "onnx" / "model_q4.onnx"))
    assert q4_graph.forward(ids).shape == (1, fp32.shape[-1])  # the last position's logits only
    q4 = logits_each(q4_graph, ids)  # (8, vocab), one position at a time
    assert_rescored(q4, fp32)  # same weights; only the rescored lm_head's tail is approximate


def test_only_the_lm_head_is_rescored_when_layers_are_q8_0(tiny_llama_dir, tmp_path):
    """A GGUF whose layer matrices are Q8_0 too: rescoring (TopK and ScatterElements) is for the
    logits, so those MatMuls stay float32 and only the lm_head is carried."""
    gguf_path = write_tiny_llama_gguf(
        hf_source_dir(tiny_llama_dir), tmp_path / "tiny.Q8_0.gguf", layers="Q8_0"
    )
    out = tmp_path / "fp32"
    export(gguf_path, out, quantize="none")
    target = tmp_path / "carried.onnx"
    counts = carry_gguf_weights(out / "onnx" / "model.onnx", gguf_path, target)
    assert counts[Q8_0] == 1 and counts[Q4_1] == 0
    ops = collections.Counter(n.op_type for n in onnx.load(str(target)).graph.node)
    assert ops["TopK"] == ops["ScatterElements"] == ops["MatMulNBits"] == 1
    ids = [1, 10, 20, 30, 40, 50, 60, 70]
    fp32 = OnnxDecoder(make_session(out / "onnx" / "model.onnx")).forward(ids)  # (8, vocab)
    assert_rescored(logits_each(OnnxDecoder(make_session(target)), ids), fp32)
