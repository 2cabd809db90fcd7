"""Quantized variants and their quality gate (cases D4: top-1 agreement >= 90% over 200 positions).

On tiny random models, dynamic int8 keeps the top-1 token on over 90% of positions, while
symmetric int4 re-quantization does not (about 53%): the export must then fail, say why in one
line, and leave no folder.
"""

from __future__ import annotations

import json

import pytest

from model_export.api import export
from model_export.check import OnnxDecoder, make_session
from model_export.errors import ExportError
from tests.fixtures.decoder_models import hf_source_dir


def test_int8_variant_passes_the_gate(tmp_path, tiny_qwen2_dir):
    out = tmp_path / "qwen2-int8"
    report = export(hf_source_dir(tiny_qwen2_dir), out, quantize="int8")
    quantized = report["quantized"]
    assert quantized["file"] == "onnx/model_int8.onnx"
    assert quantized["positions"] == 200
    assert 0.9 <= quantized["top1_agreement"] < 1.0  # close, not identical
    assert len(quantized["greedy_first_difference_per_prompt"]) == 5
    assert json.loads((out / "export_report.json").read_text())["quantized"] == quantized
    variant = make_session(out / "onnx" / "model_int8.onnx")
    assert any(node.name.startswith("past_key_values") for node in variant.get_inputs())
    logits = OnnxDecoder(variant).forward([1, 2, 3])  # (3, vocab)
    assert logits.shape[0] == 3
    assert (out / "onnx" / "model.onnx").is_file()  # the fp32 graph stays beside it


def test_int4_that_degrades_the_model_fails_cleanly(tmp_path, tiny_llama_dir):
    out = tmp_path / "llama-int4"
    with pytest.raises(ExportError, match=r"int4 quantization degrades the model: top-1 agreement"):
        export(hf_source_dir(tiny_llama_dir), out, quantize="int4")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unknown_quantization_is_refused(tmp_path, tiny_llama_dir):
    with pytest.raises(ExportError, match="unknown --quantize 'fp8'"):
        export(hf_source_dir(tiny_llama_dir), tmp_path / "x", quantize="fp8")
