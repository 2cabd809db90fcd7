"""The default model folder that `make model` builds (SmolLM2-135M-Instruct from its Q4_1 GGUF).

Reads the real folder and its export_report.json; marked slow (still run in CI, after
`make model`). The tokenizer checks restate the issue's measured traps as values.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from model_export.check import OnnxDecoder, logits_each, make_session
from model_export.fused_graph import GRAPH_FORM

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
    assert quantized["quantized_gathers"] == 2  # the embedding and the rescoring: 8-bit rows
    assert (default_model_dir / "onnx" / "model_q4.onnx").is_file()


def test_folder_ships_without_the_float32_reference(report, default_model_dir):
    """The float32 graph is the self-check's reference, not the app's: it is deleted after the
    check, and the folder (the bundle's model part) stays within 250 MB."""
    assert not (default_model_dir / "onnx" / "model.onnx").exists()
    assert report["reference_graph"] == {
        "file": "onnx/model.onnx", "kept": False, "bytes": report["reference_graph"]["bytes"]
    }  # fmt: skip
    on_disk = sum(p.stat().st_size for p in default_model_dir.rglob("*") if p.is_file())
    assert on_disk <= 250 * 10**6
    graph = (
        report["file_sizes"]["onnx/model_q4.onnx"] + report["file_sizes"]["onnx/model_q4.onnx.data"]
    )
    assert graph < report["reference_graph"]["bytes"] / 3


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


def test_probe_is_made_from_the_q4_graph_and_shares_its_weights(report, default_model_dir):
    """`make model` writes onnx/probe_model.onnx from model_q4.onnx (probe_q4.py): the graph
    alone, reading model_q4.onnx.data in place, checked against model_q4.onnx at build time."""
    probe = report["probe"]
    assert probe["shared_with"] == ["model_q4.onnx.data"]
    assert probe["bytes"] == (default_model_dir / "onnx" / "probe_model.onnx").stat().st_size
    assert probe["bytes"] < 2**20  # vs 539.6 MB for a float32 copy
    assert probe["check"]["top1_equal"] and probe["check"]["lens_last_layer_max_abs_diff"] < 1e-3
    assert report["file_sizes"]["onnx/probe_model.onnx"] == probe["bytes"]


def test_report_records_the_recipe(report):
    from model_export.default_model import RECIPE

    assert report["recipe"] == RECIPE


def test_q4_graph_answers_like_fp32(report, default_model_dir):
    """model_q4.onnx against what the export recorded from the float32 graph before deleting it
    (quantized.reference): the self-check prompt's top-10 logits at every position, and 32
    greedy tokens on each of the 5 bench prompts through the app's own engine."""
    reference = report["quantized"]["reference"]
    ids = reference["prompt_ids"]
    q4_graph = OnnxDecoder(make_session(default_model_dir / "onnx" / "model_q4.onnx"))
    q4 = logits_each(q4_graph, ids)  # (n, vocab): it returns the last position's logits only
    top_ids = np.array(reference["top_ids"])  # (n, 10), float32's order
    assert (q4.argmax(-1) == top_ids[:, 0]).all()
    # the rescored top of the lm_head: float32's logits up to summation order
    got = np.take_along_axis(q4, top_ids, axis=-1)  # (n, 10)
    assert np.abs(got - np.array(reference["top_logits"])).max() < 1e-2
    assert len(reference["greedy_ids"]) == 5 and all(len(g) == 32 for g in reference["greedy_ids"])


def test_engine_greedy_equals_float32_on_the_bench_prompts(report, default_model_dir):
    from desktop.engine.chat import load_model
    from desktop.engine.events import Message

    reference = report["quantized"]["reference"]
    model = load_model(default_model_dir, provider="cpu", threads=2)
    cases = zip(
        reference["prompts"], reference["prompts_ids"], reference["greedy_ids"], strict=True
    )
    for text, prompt_ids, expected in cases:
        ids = list(model.render_prompt([Message("user", text)]).prompt_ids)
        assert ids == prompt_ids  # the app's template and tokenizer read it as the export did
        model._stepper.forget()
        logits = model._stepper.prefill(ids)  # float32[vocab]
        got = []
        for _ in expected:
            got.append(int(np.argmax(logits)))
            logits = model._stepper.step(got[-1])
        assert got == expected, text
