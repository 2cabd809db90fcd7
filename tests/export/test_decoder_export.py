"""The decoder-only exporter on tiny random Llama, GPT-2 and Qwen2 models (tests/fixtures).

Each fixture folder was made by `model_export.api.export` with its self-check on; these tests
read the folder as the app would (onnxruntime + tokenizers, no transformers) and check the
layout, the I/O names, the report's parity figures, and the KV-cache loop against a recompute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from model_export.check import OnnxDecoder, make_session

KINDS = ["llama", "gpt2", "qwen2"]


@pytest.fixture(params=KINDS)
def exported(request) -> tuple[str, Path]:
    return request.param, request.getfixturevalue(f"tiny_{request.param}_dir")


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_layout_and_io_names(exported):
    _, folder = exported
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "onnx/model.onnx", "export_report.json"):  # fmt: skip
        assert (folder / name).is_file(), name
    assert not (folder / "tokenizer.model").exists()
    session = make_session(folder / "onnx" / "model.onnx")
    layers = _json(folder / "config.json").get("num_hidden_layers") or 2
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [name.replace("past_key_values", "present") for name in past]
    assert {i.name for i in session.get_inputs()} == {
        "input_ids", "attention_mask", "position_ids", *past
    }  # fmt: skip
    assert [o.name for o in session.get_outputs()] == ["logits", *present]


def test_report_shows_parity_with_pytorch(exported):
    kind, folder = exported
    report = _json(folder / "export_report.json")
    check = report["check"]
    assert report["model_type"] == kind
    assert check["logits_max_abs_diff"] < 1e-3
    assert len(check["logits_max_abs_diff_per_call"]) == 5  # prefill + 4 decode steps
    assert check["greedy_equal"] is True
    assert len(check["greedy_ids_onnx"]) == 32
    assert check["greedy_ids_onnx"] == check["greedy_ids_torch"]
    assert len(set(check["greedy_ids_onnx"])) > 1  # a real model, not a constant
    assert report["wall_s"] > 0 and report["peak_rss_mb"] > 0
    assert report["file_sizes"]["onnx/model.onnx"] == (folder / "onnx/model.onnx").stat().st_size


def test_kv_cache_loop_equals_full_recompute(exported):
    """nanochat's check: greedy through the cache equals greedy recomputing from scratch."""
    _, folder = exported
    decoder = OnnxDecoder(make_session(folder / "onnx" / "model.onnx"))
    ids = [5, 17, 42, 99, 7]
    cached: list[int] = []
    logits = decoder.forward(ids)  # (5, vocab), zero-length past
    for _ in range(8):
        cached.append(int(logits[-1].argmax()))
        logits = decoder.forward([cached[-1]])  # (1, vocab)
    recomputed: list[int] = []
    for _ in range(8):
        decoder.reset()
        full = decoder.forward(ids + recomputed)  # (n, vocab)
        recomputed.append(int(full[-1].argmax()))
    assert cached == recomputed


def test_prefill_logits_match_pytorch_reference(tiny_llama_dir):
    """The shipped graph against the HF folder it came from (kept beside the cached export)."""
    import torch
    from transformers import AutoModelForCausalLM

    from tests.fixtures.decoder_models import hf_source_dir

    model = AutoModelForCausalLM.from_pretrained(str(hf_source_dir(tiny_llama_dir))).eval()
    ids = [1, 10, 20, 30, 40, 50]
    with torch.inference_mode():
        expected = model(input_ids=torch.tensor([ids])).logits[0].numpy()  # (6, vocab)
    got = OnnxDecoder(make_session(tiny_llama_dir / "onnx" / "model.onnx")).forward(ids)
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_chatml_tokenizer_files(kind, request):
    folder = request.getfixturevalue(f"tiny_{kind}_dir")
    config = _json(folder / "tokenizer_config.json")
    assert "<|im_start|>" in config["chat_template"]
    assert config["eos_token"] == "<|im_end|>"
    assert config["pad_token"] == "<|endoftext|>"
    assert config["add_bos_token"] is False
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    prompt = "<|im_start|>user\nHi 😀<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.encode(prompt, add_special_tokens=True).ids
    assert ids[0] == 1 and ids[1] != 1  # exactly one <|im_start|> at the start (cases B1)
    assert tokenizer.decode(ids, skip_special_tokens=False) == prompt


def test_end_of_turn_ids_in_generation_config(tiny_llama_dir, tiny_qwen2_dir, tiny_gpt2_dir):
    for folder in (tiny_llama_dir, tiny_qwen2_dir):
        eos = _json(folder / "generation_config.json")["eos_token_id"]
        assert 2 in eos and 0 in eos  # <|im_end|> ends a turn, <|endoftext|> a document
    gpt2 = _json(tiny_gpt2_dir / "generation_config.json")
    assert gpt2["eos_token_id"] == [0]
    assert "chat_template" not in _json(tiny_gpt2_dir / "tokenizer_config.json")


def test_generation_config_bos(tiny_qwen2_dir, tiny_llama_dir):
    assert _json(tiny_llama_dir / "generation_config.json")["bos_token_id"] == 1
    assert _json(tiny_qwen2_dir / "config.json")["eos_token_id"] == [0, 2]
