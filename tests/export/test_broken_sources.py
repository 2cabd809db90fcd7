"""Broken SOURCEs and output folders: a non-zero exit, a one-line reason, and no folder left.

Runs the real CLI (`python -m model_export`) in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from model_export.api import export
from model_export.architectures import DECODER_MODEL_TYPES
from model_export.errors import ExportError

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "model_export", *map(str, args)],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300, check=False,
    )  # fmt: skip


def assert_fails_cleanly(result: subprocess.CompletedProcess, out: Path, reason: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and reason in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_missing_source(tmp_path):
    out = tmp_path / "out"
    result = run_cli(tmp_path / "nowhere.gguf", "--out", out)
    assert_fails_cleanly(result, out, "no such file or folder")


def test_unsupported_architecture_lists_supported(tmp_path):
    source = tmp_path / "bert"
    source.mkdir()
    (source / "config.json").write_text(json.dumps({"model_type": "bert"}))
    out = tmp_path / "out"
    result = run_cli(source, "--out", out)
    assert_fails_cleanly(result, out, "unsupported architecture 'bert'")
    for model_type in DECODER_MODEL_TYPES:
        assert model_type in result.stderr


@pytest.mark.parametrize(
    "payload",
    [
        b"NOTAGGUF" + bytes(64),  # wrong magic
        b"GGUF" + struct.pack("<IQQ", 3, 5, 1) + b"\xff" * 40,  # right magic, truncated body
    ],
    ids=["bad-magic", "truncated"],
)
def test_corrupt_gguf(tmp_path, payload):
    source = tmp_path / "broken.gguf"
    source.write_bytes(payload)
    out = tmp_path / "out"
    result = run_cli(source, "--out", out)
    assert_fails_cleanly(result, out, "GGUF")


def test_existing_output_needs_force(tmp_path, tiny_llama_dir):
    from tests.fixtures.decoder_models import hf_source_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists; pass --force"):
        export(hf_source_dir(tiny_llama_dir), out, check=False)
    assert (out / "keep.txt").read_text() == "mine"
    report = export(hf_source_dir(tiny_llama_dir), out, force=True, check=False)
    assert not (out / "keep.txt").exists()
    assert (out / "onnx" / "model.onnx").is_file()
    assert "check" not in report  # --no-check skips it, and only then
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partials


def test_failure_mid_export_leaves_nothing(tmp_path, tiny_llama_dir, monkeypatch):
    """An interruption after the graph is written (here: during the self-check) removes it all."""
    from model_export import check
    from tests.fixtures.decoder_models import hf_source_dir

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(check, "check_against_torch", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        export(hf_source_dir(tiny_llama_dir), out)
    assert not [p.name for p in tmp_path.iterdir() if p.name != "home"]
