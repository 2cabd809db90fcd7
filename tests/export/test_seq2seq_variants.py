"""Encoder-decoder export variants: quantized graphs and their gate (D4), tied T5, the CLI's route.

Each test exports into its own temp folder (a few seconds each on the tiny models).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from model_export.errors import ExportError
from model_export.seq2seq import Seq2SeqExportError, export_seq2seq
from model_export.seq2seq_runtime import OnnxSeq2Seq
from tests.fixtures.seq2seq_models import build_tiny_hf_folder, hf_source_dir


def _export(hf: Path, out: Path, **kwargs) -> dict:
    out.mkdir(parents=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(str(hf))
    return export_seq2seq(model, AutoTokenizer.from_pretrained(hf), out, **kwargs)


def test_int8_variant_passes_the_gate_and_still_answers(
    trained_t5_dir: Path, trained_t5_examples, tmp_path: Path
):
    out = tmp_path / "int8"
    report = _export(hf_source_dir(trained_t5_dir), out, quantize="int8")
    gate = report["check"]["quantized"]["int8"]
    assert gate["positions"] == 200
    assert gate["top1_agreement"] >= 0.90
    assert "onnx/decoder_model_merged_int8.onnx" in report["files"]
    assert json.loads((out / "export_report.json").read_text())["quantize"] == "int8"
    runner = OnnxSeq2Seq(out, AutoConfig.from_pretrained(out), suffix="_int8")
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    right = 0
    for word, answer in trained_t5_examples[:50]:
        ids = runner.greedy(np.array([tok.encode(word).ids], np.int64), 0, {1}, 12)
        right += tok.decode(ids, skip_special_tokens=True) == answer
    assert right >= 47


def test_q4_variant_that_degrades_top1_fails_with_a_clear_message(
    trained_t5_dir: Path, tmp_path: Path
):
    """Case D4: 4-bit weights on a d_model-64 model change the top-1 token too often."""
    with pytest.raises(Seq2SeqExportError, match=r"q4 weights change the top-1 token at \d+%"):
        _export(hf_source_dir(trained_t5_dir), tmp_path / "q4", quantize="int4")
    assert issubclass(Seq2SeqExportError, ExportError)  # the CLI prints it as one line


def test_tied_t5_original_style_passes_parity(tmp_path: Path):
    """Original T5 ties lm_head to the embeddings and rescales by d_model**-0.5 before it."""
    hf = build_tiny_hf_folder("t5", tmp_path / "hf")
    model = AutoModelForSeq2SeqLM.from_pretrained(str(hf), tie_word_embeddings=True)
    model.tie_weights()
    assert torch.equal(model.lm_head.weight, model.shared.weight)
    (tmp_path / "out").mkdir()
    report = export_seq2seq(model, AutoTokenizer.from_pretrained(hf), tmp_path / "out")
    assert report["check"]["failures"] == []
    assert max(report["check"]["logits"]["max_abs_diff"]) <= 1e-3


def test_decoder_only_model_is_refused(tmp_path: Path):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(Seq2SeqExportError, match="not an encoder-decoder model"):
        export_seq2seq(model, None, tmp_path)


def test_api_export_routes_an_encoder_decoder_folder(tiny_bart_dir: Path, tmp_path: Path):
    """`python -m model_export SOURCE --out DIR` (api.export) on a local BART folder."""
    from model_export.api import export

    report = export(hf_source_dir(tiny_bart_dir), tmp_path / "bart")
    assert (tmp_path / "bart" / "onnx" / "decoder_model_merged.onnx").is_file()
    assert report["kind"] == "encoder-decoder"
    assert report["check"]["greedy"]["equal"] is True
