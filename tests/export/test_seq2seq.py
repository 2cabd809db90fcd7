"""Encoder-decoder exports (T5, BART, Marian): layout, I/O, parity with PyTorch, cases D1, D2, A7.

The folders come from tests/fixtures/seq2seq_models.py (exported once, cached between runs);
PyTorch references load the Hugging Face folder each export was made from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from model_export.seq2seq_runtime import OnnxSeq2Seq, read_cache_layout
from tests.fixtures.seq2seq_models import hf_source_dir

KINDS = ["t5", "bart", "marian"]
LAYERS = 2


@pytest.fixture(params=KINDS)
def exported(request) -> Path:
    return request.getfixturevalue(f"tiny_{request.param}_dir")


def _pytorch(folder: Path):
    hf = hf_source_dir(folder)
    return AutoModelForSeq2SeqLM.from_pretrained(str(hf)).eval(), AutoTokenizer.from_pretrained(hf)


def test_layout_and_graph_io(exported: Path):
    onnx_dir = exported / "onnx"
    assert sorted(p.name for p in onnx_dir.glob("*.onnx")) == [
        "decoder_model_merged.onnx",
        "encoder_model.onnx",
    ]
    for name in (
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (exported / name).is_file(), name
    assert (exported / "special_tokens_map.json").is_file()
    encoder = ort.InferenceSession(str(onnx_dir / "encoder_model.onnx"))
    assert [i.name for i in encoder.get_inputs()] == ["input_ids", "attention_mask"]
    assert [o.name for o in encoder.get_outputs()] == ["last_hidden_state"]
    decoder = ort.InferenceSession(str(onnx_dir / "decoder_model_merged.onnx"))
    cache = [
        f"{i}.{part}.{kv}" for i in range(LAYERS) for part in ("decoder", "encoder")
        for kv in ("key", "value")
    ]  # fmt: skip
    assert {i.name for i in decoder.get_inputs()} == {
        "input_ids",
        "encoder_attention_mask",
        "encoder_hidden_states",
        "use_cache_branch",
        *(f"past_key_values.{c}" for c in cache),
    }
    assert {o.name for o in decoder.get_outputs()} == {"logits", *(f"present.{c}" for c in cache)}


def test_report_records_passing_parity(exported: Path):
    check = json.loads((exported / "export_report.json").read_text())["check"]
    assert check["failures"] == []
    assert len(check["logits"]["max_abs_diff"]) == 4  # the first step and 3 later cached steps
    assert max(check["logits"]["max_abs_diff"]) <= 1e-3
    assert check["greedy"]["equal"] is True
    assert check["greedy"]["onnx"] == check["greedy"]["pytorch"]
    assert len(check["greedy"]["onnx"]) == 32 or check["greedy"]["onnx"][-1] in (0, 1, 2)


def test_d1_first_step_with_empty_cache_matches_pytorch(exported: Path):
    """Case D1: the first decoder step with a zero-length cache gives PyTorch's logits (1e-3)."""
    model, tokenizer = _pytorch(exported)
    runner = OnnxSeq2Seq(exported, model.config)
    src = np.array([tokenizer("Hello world")["input_ids"]], np.int64)  # (1, S)
    mask = np.ones_like(src)
    start = model.generation_config.decoder_start_token_id
    logits, cache = runner.step(
        np.array([[start]], np.int64), runner.encode(src, mask), mask, None
    )  # (1, 1, vocab)
    with torch.no_grad():
        ref = model(
            input_ids=torch.from_numpy(src), decoder_input_ids=torch.tensor([[start]])
        ).logits.numpy()
    assert np.abs(logits - ref).max() <= 1e-3
    heads, head_dim = runner.layout.heads, runner.layout.head_dim
    assert cache["past_key_values.0.decoder.key"].shape == (1, heads, 1, head_dim)
    assert cache["past_key_values.0.encoder.key"].shape == (1, heads, src.shape[1], head_dim)


def test_d2_cache_inputs_read_from_graph_not_file_name(exported: Path, tmp_path: Path):
    """Case D2: a merged decoder saved as `decoder_model.onnx` still reports its KV-cache inputs."""
    renamed = tmp_path / "decoder_model.onnx"
    shutil.copy(exported / "onnx" / "decoder_model_merged.onnx", renamed)
    layout = read_cache_layout(ort.InferenceSession(str(renamed)), 0, 0)
    assert len(layout.past_names) == 4 * LAYERS
    assert layout.has_cache_flag
    assert layout.heads == 4 and layout.head_dim == 8


def test_cached_onnx_greedy_equals_pytorch_generate(exported: Path):
    """Case D2: greedy ids of the ONNX cached loop equal PyTorch's on a second source text."""
    model, tokenizer = _pytorch(exported)
    gen = model.generation_config
    src = np.array([tokenizer("Once upon a time, Paris.")["input_ids"]], np.int64)
    runner = OnnxSeq2Seq(exported, model.config)
    eos = {gen.eos_token_id}
    ids = runner.greedy(src, gen.decoder_start_token_id, eos, 20, gen.forced_bos_token_id)
    with torch.no_grad():
        ref = model.generate(
            torch.from_numpy(src), do_sample=False, num_beams=1, max_new_tokens=20,
            min_length=0, no_repeat_ngram_size=0, forced_eos_token_id=None,
        )[0, 1:].tolist()  # fmt: skip
    assert ids == ref


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("t5", {"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0}),
        ("bart", {"decoder_start_token_id": 2, "eos_token_id": 2, "forced_bos_token_id": 0}),
        ("marian", {"decoder_start_token_id": 2, "eos_token_id": 0, "pad_token_id": 2}),
    ],
)
def test_generation_config_has_start_eos_and_forced_bos(kind, expected, request):
    folder = request.getfixturevalue(f"tiny_{kind}_dir")
    gen = json.loads((folder / "generation_config.json").read_text())
    assert {key: gen.get(key) for key in expected} == expected


def test_flan_t5_style_untied_head_is_kept(tiny_t5_dir: Path):
    config = AutoConfig.from_pretrained(tiny_t5_dir)
    assert config.tie_word_embeddings is False
    model, _ = _pytorch(tiny_t5_dir)
    assert not torch.equal(model.lm_head.weight, model.shared.weight)


@pytest.mark.parametrize("kind", ["t5", "marian"])
def test_a7_sentencepiece_tokenizer_round_trips_without_markers(kind, request):
    """Case A7: "Hello world" decodes to itself; U+2581 and </s> never reach the reply text."""
    folder = request.getfixturevalue(f"tiny_{kind}_dir")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    encoding = tok.encode("Hello world")
    assert encoding.tokens[-1] == "</s>" and "▁" in "".join(encoding.tokens)
    assert tok.decode(encoding.ids, skip_special_tokens=True) == "Hello world"
    greedy = json.loads((folder / "export_report.json").read_text())["check"]["greedy"]["onnx"]
    reply = tok.decode(greedy, skip_special_tokens=True)
    assert "▁" not in reply and "</s>" not in reply


def test_multi_token_first_step_and_cached_steps_match_pytorch(exported: Path):
    """Several decoder tokens in one no-cache step, then cached steps: every position's logits."""
    model, tokenizer = _pytorch(exported)
    runner = OnnxSeq2Seq(exported, model.config)
    src = np.array([tokenizer("The house is green.")["input_ids"]], np.int64)  # (1, S)
    mask = np.ones_like(src)
    start = model.generation_config.decoder_start_token_id
    prefix = [start, 5, 9, 14, 3, 7, 11]
    with torch.no_grad():
        ref = model(
            input_ids=torch.from_numpy(src), decoder_input_ids=torch.tensor([prefix])
        ).logits.numpy()  # (1, T, vocab)
    hidden = runner.encode(src, mask)
    logits, cache = runner.step(np.array([prefix[:4]], np.int64), hidden, mask, None)
    assert np.abs(logits[0] - ref[0, :4]).max() <= 1e-3
    for t in range(4, len(prefix)):
        logits, cache = runner.step(np.array([[prefix[t]]], np.int64), hidden, mask, cache)
        assert np.abs(logits[0, -1] - ref[0, t]).max() <= 1e-3
