"""The default model folder that `make model` builds (SmolLM2-135M-Instruct from its Q4_1 GGUF).

Reads the real folder and its export_report.json; marked slow (still run in CI, after
`make model`). The tokenizer checks restate the issue's measured traps as values.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from model_export.check import OnnxDecoder, make_session
from model_export.fused_graph import GRAPH_FORM
from model_export.gguf_carry import RESCORE_TOP

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(default_model_dir) -> dict:
    return json.loads((default_model_dir / "export_report.json").read_text(encoding="utf-8"))


def test_fp32_parity_with_pytorch(report):
    assert report["from_gguf"] is True and report["model_type"] == "llama"
    assert report["check"]["logits_max_abs_diff"] < 1e-3
    assert report["check"]["greedy_equal"] is True
    assert len(report["check"]["greedy_ids_onnx"]) == 32


def test_shipped_int4_is_the_exact_gguf_carry(report, default_model_dir):
    quantized = report["quantized"]
    assert quantized["method"] == "gguf-carry"
    assert quantized["graph"] == GRAPH_FORM  # GroupQueryAttention, fused RMSNorm
    assert quantized["matmuls"]["Q4_1"] == 120  # 30 layers x (packed q/k/v, o, gate+up, down)
    assert quantized["matmuls"]["Q8_0"] == 1  # the tied lm_head: int8 logits, top 64 rescored
    assert quantized["embedding_tied_to_lm_head"] is False  # it reads the embedding's rows
    assert quantized["greedy_first_difference_per_prompt"] == [None] * 5
    assert quantized["top1_agreement"] == 1.0
    assert (default_model_dir / "onnx" / "model_q4.onnx").is_file()
    assert report["file_sizes"]["onnx/model_q4.onnx"] < report["file_sizes"]["onnx/model.onnx"] / 2


def test_tokenizer_matches_the_gguf(report, default_model_dir):
    assert report["tokenizer_check"]["vocabulary"]["mismatches"] == 0
    assert report["tokenizer_check"]["vocabulary"]["checked"] > 48000
    assert not (default_model_dir / "tokenizer.model").exists()
    tok = Tokenizer.from_file(str(default_model_dir / "tokenizer.json"))
    assert tok.encode("Hello world").ids == [19556, 905]
    for text in ("héllo 😀", "你好，世界", "\tTabs\t\tand  spaces"):
        ids = tok.encode(text).ids
        assert tok.decode(ids) == text
    prompt = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tok.encode(prompt).ids
    assert ids[:2] == [1, 9690]  # exactly one <|im_start|>, then 'system' (cases B1)
    assert len(ids) < 50  # byte-level BPE, not the 116-id SentencePiece misreading
    assert "Ġ" not in tok.decode(ids)


def test_special_tokens_and_end_of_turn(default_model_dir):
    config = json.loads((default_model_dir / "tokenizer_config.json").read_text())
    generation = json.loads((default_model_dir / "generation_config.json").read_text())
    assert config["eos_token"] == "<|im_end|>" and config["bos_token"] == "<|im_start|>"
    assert config["pad_token"] == "<|im_end|>"
    assert config["add_bos_token"] is False
    assert "<|im_start|>assistant" in config["chat_template"]
    assert 2 in generation["eos_token_id"]
    # The model card's sampling, not transformers' greedy default (which loops on this model).
    assert generation["do_sample"] is True
    assert (generation["temperature"], generation["top_p"]) == (0.2, 0.9)
    assert generation["repetition_penalty"] == 1.1


def test_report_records_the_recipe(report):
    from model_export.default_model import RECIPE

    assert report["recipe"] == RECIPE


def test_q4_graph_answers_like_fp32(default_model_dir):
    ids = [
        1,
        4093,
        198,
        19556,
        905,
        2,
        198,
        1,
        520,
        9531,
        198,
    ]  # a ChatML user turn, then assistant
    fp32 = OnnxDecoder(make_session(default_model_dir / "onnx" / "model.onnx")).forward(ids)
    q4 = OnnxDecoder(make_session(default_model_dir / "onnx" / "model_q4.onnx")).forward(ids)
    assert (fp32.argmax(-1) == q4.argmax(-1)).all()
    # the same weights: within 1e-2 where the lm_head rescored (at least the top 64 of each
    # position), within the int8 activations' error (measured: at most 0.55) elsewhere
    close = np.abs(fp32 - q4) < 1e-2  # (11, vocab)
    assert (close.sum(-1) >= RESCORE_TOP).all()
    top10 = np.argsort(-q4, axis=-1)[:, :10]
    assert np.take_along_axis(close, top10, -1).all()
    assert abs(fp32 - q4).max() < 1.0
