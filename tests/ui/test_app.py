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
def test_self_test_on_the_default_model(qapp, capsys, default_model_dir):
    code = main(["--self-test", "--model", str(default_model_dir)])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0, out
    assert out.startswith("self-test ok: model SmolLM2-135M-Instruct on CPUExecutionProvider")
    assert "'héllo 😀' -> " in out
