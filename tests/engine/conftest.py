"""Engine test fixtures: tokenizers trained once per session (see tokenizer_factories.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.engine.tokenizer import TextTokenizer
from tests.engine.tokenizer_factories import FACTORIES, write_tokenizer


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    return {kind: write_tokenizer(kind, root / kind) for kind in FACTORIES}


@pytest.fixture(scope="session")
def tokenizers(tokenizer_dirs) -> dict[str, TextTokenizer]:
    out = {}
    for kind, folder in tokenizer_dirs.items():
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        out[kind] = TextTokenizer(folder / "tokenizer.json", config)
    return out
