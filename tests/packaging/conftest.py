"""Tests of the built one-folder bundle (`make dist`). They run in `make test-dist` (and CI), which
sets TOKENGLASS_BUNDLE to the bundle folder; plain `pytest` does not collect them, since building
the bundle takes minutes."""

import os
from pathlib import Path

import pytest

if not os.environ.get("TOKENGLASS_BUNDLE"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    path = Path(os.environ["TOKENGLASS_BUNDLE"]).resolve()
    assert (path / "tokenglass").is_file(), f"no bundle at {path}: run `make dist`"
    return path
