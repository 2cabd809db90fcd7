"""The CLI's success path, the `default` command's no-op when the model is there, and the
architecture registry (every registered decoder type has a tiny test model, as in optimum)."""

from __future__ import annotations

import json

from model_export.architectures import DECODER_MODEL_TYPES, supported_model_types
from model_export.default_model import RECIPE, build_default_model, is_current
from tests.export.test_broken_sources import run_cli
from tests.fixtures import decoder_models


def test_every_registered_decoder_type_has_a_tiny_fixture():
    for model_type in DECODER_MODEL_TYPES:
        assert hasattr(decoder_models, f"tiny_{model_type}_dir"), model_type
    assert set(DECODER_MODEL_TYPES) <= set(supported_model_types())


def test_cli_exports_a_folder(tmp_path, tiny_gpt2_dir):
    out = tmp_path / "gpt2"
    result = run_cli(decoder_models.hf_source_dir(tiny_gpt2_dir), "--out", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[0])
    assert summary["greedy_equal"] is True and summary["logits_max_abs_diff"] < 1e-3
    assert (out / "onnx" / "model.onnx").is_file()
    assert json.loads((out / "export_report.json").read_text())["model_type"] == "gpt2"


def test_default_does_nothing_when_the_model_is_there():
    from desktop import paths

    folder = paths.default_model_dir()
    folder.mkdir(parents=True)
    (folder / "export_report.json").write_text(json.dumps({"recipe": RECIPE}))
    assert build_default_model() == folder
    assert sorted(p.name for p in folder.iterdir()) == ["export_report.json"]
    assert not (paths.cache_dir() / "wheels").exists()  # no download was attempted


def test_default_model_from_an_older_recipe_is_not_current(tmp_path):
    assert not is_current(tmp_path)  # no report: an interrupted or missing build
    (tmp_path / "export_report.json").write_text("{}")
    assert not is_current(tmp_path)  # built before recipes were recorded
    (tmp_path / "export_report.json").write_text(json.dumps({"recipe": "older"}))
    assert not is_current(tmp_path)
    (tmp_path / "export_report.json").write_text(json.dumps({"recipe": RECIPE}))
    assert is_current(tmp_path)
