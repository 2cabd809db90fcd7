"""I10: a stdout that is not UTF-8 (PYTHONIOENCODING=ascii; cp1252 as Windows gives a redirected
stdout) neither crashes `tokenglass chat` / `tokenize` nor loses the turn: what the encoding
cannot carry is escaped (`\\uXXXX`, still valid JSON in --json lines). Real subprocesses."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.cli import ESCAPE_ERRORS
from desktop.history import History

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT = "héllo 😀 “quotes”"


def tokenglass(*args: str | Path, encoding: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": encoding, "TOKENGLASS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "desktop", *map(str, args)],
        capture_output=True, cwd=REPO_ROOT, env=env, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_chat_json_on_a_narrow_stdout_is_valid_json_and_saved(tiny_llama_dir, tmp_path, encoding):
    home = tmp_path / "home"
    argv = ["chat", "--model", tiny_llama_dir, "--temperature", "0", "--max-new-tokens", "6"]
    result = tokenglass(*argv, "--stop", "é☃", "--json", TEXT, encoding=encoding, home=home)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr
    raw = result.stdout.decode(encoding)  # the bytes are in the stream's own encoding
    lines = [json.loads(line) for line in raw.splitlines()]
    done = lines[-1]
    assert done["type"] == "done" and done["settings"]["stop_strings"] == ["é☃"]
    assert "".join(line["text"] for line in lines if line["type"] == "token") == done["text"]
    with History(home / "history.sqlite3") as history:
        (conv,) = history.list_conversations()
        user, reply = history.messages(conv.id)
    assert user.text == TEXT and reply.text == done["text"]


def non_ascii_seed(folder: Path, settings) -> int:
    """A seed whose reply holds a character outside ASCII and cp1252 (found in-process; the
    subprocess then draws the same reply from the same seed)."""
    from desktop.engine.chat import load_model
    from desktop.engine.events import Message

    model = load_model(folder, provider="cpu", threads=1)
    for seed in range(200):
        *_, done = model.generate([Message("user", TEXT)], dataclasses.replace(settings, seed=seed))
        if any(ord(c) > 0xFF for c in done.text):
            return seed
    raise AssertionError("no seed gave a reply outside cp1252")


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_chat_text_on_a_narrow_stdout_exits_0_and_saves_the_turn(
    tiny_llama_dir, tmp_path, encoding
):
    from desktop.engine.events import GenerationSettings

    seed = non_ascii_seed(tiny_llama_dir, GenerationSettings(temperature=1.5, max_new_tokens=40))
    home = tmp_path / "home"
    argv = ["chat", "--model", tiny_llama_dir, "--temperature", "1.5", "--seed", str(seed)]
    result = tokenglass(*argv, "--max-new-tokens", "40", TEXT, encoding=encoding, home=home)
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr
    with History(home / "history.sqlite3") as history:
        (conv,) = history.list_conversations()
        user, reply = history.messages(conv.id)
    assert user.text == TEXT and not reply.text.isascii()
    escaped = reply.text.encode(encoding, ESCAPE_ERRORS).decode(encoding)
    assert result.stdout.decode(encoding) == escaped + "\n"  # the reply, then one newline


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_tokenize_on_a_narrow_stdout(tiny_llama_dir, tmp_path, encoding):
    home = tmp_path / "home"
    text = tokenglass("tokenize", TEXT, "--model", tiny_llama_dir, encoding=encoding, home=home)
    assert text.returncode == 0 and b"Traceback" not in text.stderr, text.stderr
    assert text.stdout.decode(encoding).strip()
    as_json = tokenglass(
        "tokenize", TEXT, "--model", tiny_llama_dir, "--json", encoding=encoding, home=home
    )
    assert as_json.returncode == 0, as_json.stderr
    tokens = json.loads(as_json.stdout.decode(encoding))["tokens"]
    assert b"".join(bytes(t["bytes"]) for t in tokens) == TEXT.encode()


def test_the_escape_handler_writes_json_escapes():
    assert "é😀a".encode("ascii", ESCAPE_ERRORS) == b"\\u00e9\\ud83d\\ude00a"
    assert json.loads('"' + "é😀".encode("cp1252", ESCAPE_ERRORS).decode("cp1252") + '"')
