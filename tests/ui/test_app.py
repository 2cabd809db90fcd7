"""`tokenglass --self-test`: exit 0 with one summary line, or non-zero with the reason."""

from __future__ import annotations

import pytest

from desktop.ui.app import main


def test_self_test_reports_a_missing_model(qapp, capsys, tmp_path):
    code = main(["--self-test", "--model", str(tmp_path / "no-such-model")])
    out = capsys.readouterr().out
    assert code == 2
    assert out.startswith("self-test FAILED: model did not load: The model could not be loaded.")


@pytest.mark.slow
def test_self_test_on_the_default_model(qapp, capsys, default_model_dir, dates_model_dir):
    from desktop import paths

    (paths.models_dir() / paths.DATES_MODEL_NAME).symlink_to(dates_model_dir)
    code = main(["--self-test", "--model", str(default_model_dir)])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0, out
    assert out.startswith("self-test ok: model SmolLM2-135M-Instruct on CPUExecutionProvider")
    assert "'héllo 😀' -> " in out
    assert f"{paths.DATES_MODEL_NAME}: '3rd of March 2021' -> '2021-03-03'" in out


def test_self_test_fails_without_the_dates_model(qapp, capsys, tiny_gpt2_dir):
    """Any model would do for the first part (a tiny GPT-2: byte-level, so "héllo 😀" round-trips).
    With no dates model installed, the self-test says so and exits 1."""
    code = main(["--self-test", "--model", str(tiny_gpt2_dir)])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 1, out
    assert "dates model did not load" in out and "t5-dates-iso8601" in out, out


def test_model_box_shows_a_models_title_else_name_and_precision(tmp_path):
    from desktop.engine.catalog import ModelInfo
    from desktop.ui.model_controller import model_label

    plain = ModelInfo("SmolLM2-135M-Instruct", tmp_path, "llama", "int4", 1, "decoder")
    assert model_label(plain) == "SmolLM2-135M-Instruct · int4"
    titled = ModelInfo("t5-dates-iso8601", tmp_path, "t5", "fp32", 1, "encoder-decoder",
                       title="Dates to ISO 8601 (T5, trained here)")  # fmt: skip
    assert model_label(titled) == "Dates to ISO 8601 (T5, trained here)"
