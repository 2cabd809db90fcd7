"""I13: the export CLI (`python -m model_export`, as `tokenglass-export` runs it) for every export
kind: decoder-only, encoder-decoder and GGUF, on tiny fixture models, in a subprocess. The
encoder-decoder export used to crash while printing its summary (KeyError
'logits_max_abs_diff') after writing the folder, and exit 1."""

from __future__ import annotations

import json

import pytest

from desktop.engine.chat import load_model
from desktop.engine.events import GenerationSettings, Message
from model_export.__main__ import summary
from tests.export.test_broken_sources import run_cli
from tests.fixtures.common import hf_source_dir


def exported(result, out):
    """The summary the CLI printed; asserts a clean success and a folder the engine opens."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == str(out) and "Traceback" not in result.stderr
    model = load_model(out, provider="cpu", threads=1)
    events = list(model.generate([Message("user", "Hi")], GenerationSettings(max_new_tokens=2)))
    assert events[-1].finish_reason in ("length", "stop")
    return json.loads(lines[0])


@pytest.mark.parametrize("fixture", ["tiny_t5_dir", "tiny_bart_dir"])
def test_cli_exports_an_encoder_decoder_model_and_prints_its_summary(fixture, request, tmp_path):
    out = tmp_path / fixture
    result = run_cli(hf_source_dir(request.getfixturevalue(fixture)), "--out", out)
    printed = exported(result, out)
    assert printed["kind"] == "encoder-decoder"
    assert printed["greedy_equal"] is True and 0 <= printed["logits_max_abs_diff"] < 1e-3
    assert (out / "onnx" / "decoder_model_merged.onnx").is_file()


def test_cli_exports_a_gguf_file(tiny_llama_gguf, tmp_path):
    out = tmp_path / "gguf"
    printed = exported(run_cli(tiny_llama_gguf, "--out", out), out)
    assert printed["greedy_equal"] is True and printed["logits_max_abs_diff"] < 1e-3
    assert json.loads((out / "export_report.json").read_text())["from_gguf"] is True


def test_cli_exports_a_decoder_without_its_check(tiny_gpt2_dir, tmp_path):
    out = tmp_path / "gpt2"
    printed = exported(run_cli(hf_source_dir(tiny_gpt2_dir), "--out", out, "--no-check"), out)
    assert "logits_max_abs_diff" not in printed and "greedy_equal" not in printed
    assert printed["kind"] == "decoder"


def test_summary_reads_both_check_shapes():
    decoder = {"name": "a", "check": {"logits_max_abs_diff": 2e-6, "greedy_equal": True}}
    seq2seq = {
        "kind": "encoder-decoder",
        "check": {"logits": {"max_abs_diff": [1e-6, 3e-6]}, "greedy": {"equal": False}},
    }
    assert summary(decoder)["logits_max_abs_diff"] == 2e-6 and summary(decoder)["greedy_equal"]
    assert summary(seq2seq)["logits_max_abs_diff"] == 3e-6
    assert summary(seq2seq)["greedy_equal"] is False
    assert "greedy_equal" not in summary({"name": "b"})
