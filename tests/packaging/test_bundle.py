"""The packaged app: what it carries, what it leaves out, and that it checks itself (H1-H5)."""

import json
import os
import subprocess
from pathlib import Path

from desktop.paths import DATES_MODEL_NAME

BUDGET_BYTES = 250 * 2**20  # the bundle's budget, the model not counted
MODEL_BUDGET_BYTES = 250 * 10**6  # the default model's folder (issue 18)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _names(bundle_dir: Path) -> list[str]:
    return [p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*")]


def test_bundle_has_no_torch_or_transformers(bundle_dir):
    names = _names(bundle_dir)
    for forbidden in ("torch", "transformers", "optimum", "model_export"):
        leaked = [n for n in names if f"/{forbidden}/" in f"/{n}/"]
        assert not leaked, f"{forbidden} leaked into the bundle: {leaked[:3]}"


def test_bundle_carries_native_libraries_and_qt_platform_plugins(bundle_dir):
    names = _names(bundle_dir)
    assert any("onnxruntime" in n and "libonnxruntime" in n for n in names)
    assert any(n.startswith("_internal/tokenizers/") and n.endswith((".so", ".pyd")) for n in names)
    platforms = {Path(n).name for n in names if "/platforms/" in n}
    assert {"libqxcb.so", "libqoffscreen.so"} <= platforms


def test_bundle_leaves_out_unused_qt_parts(bundle_dir):
    names = _names(bundle_dir)
    for part in ("QtWebEngine", "QtQuick", "QtQml", "QtPdf"):
        assert not [n for n in names if part in Path(n).name], part
    translations = [n for n in names if "/translations/" in n and n.endswith(".qm")]
    assert all("_en" in Path(n).name for n in translations), translations[:3]


def test_bundle_size_within_budget(bundle_dir):
    model = bundle_dir / "_internal" / "models"
    model_bytes = _size(model)
    app_bytes = _size(bundle_dir) - model_bytes
    print(f"bundle: app {app_bytes / 2**20:.0f} MiB + model {model_bytes / 2**20:.0f} MiB")
    assert model_bytes > 50 * 2**20, "the default model is not in the bundle"
    assert model_bytes <= MODEL_BUDGET_BYTES
    assert app_bytes < BUDGET_BYTES


def test_bundle_carries_only_the_graph_the_app_loads(bundle_dir):
    """The default model: the exact int4 graph and its weights file, not the float32 reference
    (the export's self-check deletes it) nor any other variant, and its probe graph (attention
    and logit lens, made from model_q4.onnx: its weights are model_q4.onnx.data). The dates
    model: its encoder and decoder, and its probe graph (its weights are in the two graphs)."""
    models = bundle_dir / "_internal" / "models"
    default = sorted(p.name for p in (models / "SmolLM2-135M-Instruct").rglob("*.onnx*"))
    assert default == ["model_q4.onnx", "model_q4.onnx.data", "probe_model.onnx"], default
    dates = sorted(p.name for p in (models / "t5-dates-iso8601").rglob("*.onnx*"))
    assert dates == ["decoder_model_merged.onnx", "encoder_model.onnx", "probe_model.onnx"], dates


def test_self_test_from_root_offscreen(bundle_dir, tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TOKENGLASS_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [str(bundle_dir / "tokenglass"), "--self-test"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert "self-test ok" in summary.lower(), summary
    assert "'3rd of March 2021' -> '2021-03-03'" in summary, summary  # the dates model ran
    # User data goes to the user data folder, never into the bundle (case H3).
    assert (tmp_path / "home").is_dir()
    assert not list(bundle_dir.rglob("*.sqlite3"))


def test_bundle_carries_the_dates_model(bundle_dir, tmp_path):
    """The second bundled model: an encoder-decoder, listed with its kind and title; its training
    record (the PyTorch weights the tests compare with) stays out of the bundle."""
    folder = bundle_dir / "_internal" / "models" / DATES_MODEL_NAME
    graphs = sorted(p.name for p in (folder / "onnx").glob("*.onnx"))
    assert [g for g in graphs if g.startswith("encoder_model")], graphs
    assert [g for g in graphs if g.startswith("decoder_model_merged")], graphs
    assert (folder / "tokenizer.json").is_file() and not (folder / "training").exists()
    env = {**os.environ, "TOKENGLASS_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [str(bundle_dir / "tokenglass"), "models", "--json"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    dates = rows[DATES_MODEL_NAME]
    assert dates["kind"] == "encoder-decoder" and "dates" in dates["name"]
    assert dates["title"] == "Dates to ISO 8601 (T5, trained here)"
