"""Shared test set-up: each test runs with its own user data folder; model fixtures are plugins.

`default_model_dir` is the real default model (SmolLM2-135M-Instruct) that `make model` builds in
the user's models folder before the tests; tests that use it are marked `slow` (still run in CI).
`dates_model_dir` is the other bundled model (a small T5 trained here), from the same folder.
Tiny model fixtures live in tests/fixtures/ and are cached between runs in .cache/ (git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Resolved before any test points TOKENGLASS_HOME at a temp dir.
from desktop import paths

REAL_DEFAULT_MODEL_DIR = paths.default_model_dir()
REAL_DATES_MODEL_DIR = paths.dates_model_dir()
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "test-models"

pytest_plugins = ["tests.fixtures.decoder_models", "tests.fixtures.seq2seq_models"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets a fresh, empty user data folder."""
    monkeypatch.setenv("TOKENGLASS_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The real default model folder; built by `make model` (python -m model_export default)."""
    if not (REAL_DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.fail(
            f"the default model is missing at {REAL_DEFAULT_MODEL_DIR}; "
            "build it with `make model` (python -m model_export default)"
        )
    return REAL_DEFAULT_MODEL_DIR


@pytest.fixture(scope="session")
def dates_model_dir(model_cache_dir: Path) -> Path:
    """The bundled dates T5 (model_export.dates_model) as `make model` built it in the user's
    models folder; when that folder is missing or from an older recipe, built once into the test
    cache (a few minutes: training included)."""
    from model_export.dates_model import build_dates_model, is_current, recipe_stamp

    if is_current(REAL_DATES_MODEL_DIR):
        return REAL_DATES_MODEL_DIR
    return build_dates_model(model_cache_dir / f"dates-{recipe_stamp()}")


@pytest.fixture(scope="session")
def model_cache_dir() -> Path:
    """Where tiny-model fixtures cache their exports between runs."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return CACHE_DIR
