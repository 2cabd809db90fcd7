"""A saved chat keeps its system prompt and sampling settings in the CLI: `chat --continue` and
`branch` use them unless flags override, `export` writes them (tiny model, real history file)."""

from __future__ import annotations

import json

import pytest

from desktop import paths
from desktop.__main__ import main
from desktop.engine.chat import load_model
from desktop.engine.events import Message
from desktop.history import History

FRENCH = "Answer in French."


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def phase_ids(rows: list[dict]) -> list[int]:
    """The prompt ids the engine read, from the run's tokenize phase record."""
    return next(r for r in rows if r["type"] == "phase" and r["phase"] == "tokenize")["ids"]


@pytest.fixture
def model(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir)
    yield loaded
    loaded.close()


@pytest.fixture
def french_chat(tiny_llama_dir, capsys):
    """A saved chat started with a system prompt and sampling options: (its rows, done)."""
    argv = ["chat", "--model", str(tiny_llama_dir), "--system", FRENCH, "--temperature", "0.9"]
    argv += ["--seed", "5", "--max-new-tokens", "4", "--json", "Hi"]
    assert main(argv) == 0
    rows = json_lines(capsys.readouterr().out)
    return rows, rows[-1]


def saved(conv_id: int):
    with History(paths.history_db()) as history:
        return history.conversation(conv_id)


def test_a_new_chat_is_saved_with_its_system_prompt_and_settings(french_chat):
    _rows, done = french_chat
    chat = saved(done["conversation_id"])
    assert chat.system_prompt == FRENCH
    assert (chat.settings.temperature, chat.settings.seed, chat.settings.max_new_tokens) == (
        0.9,
        5,
        4,
    )


def test_continue_is_sent_with_the_chats_own_prompt_and_settings(
    tiny_llama_dir, french_chat, model, capsys
):
    _rows, first = french_chat
    conv = first["conversation_id"]
    argv = ["chat", "--continue", str(conv), "--model", str(tiny_llama_dir), "--json", "More"]
    assert main(argv) == 0  # no --system, no sampling option
    rows = json_lines(capsys.readouterr().out)
    done = rows[-1]
    assert (done["settings"]["temperature"], done["settings"]["seed"]) == (0.9, 5)
    assert done["settings"]["max_new_tokens"] == 4
    messages = [
        Message("system", FRENCH),
        Message("user", "Hi"),
        Message("assistant", first["text"]),
        Message("user", "More"),
    ]
    assert phase_ids(rows) == list(model.render_prompt(messages, 4).prompt_ids)
    without = model.render_prompt(messages[1:], 4).prompt_ids  # what a lost prompt would send
    assert phase_ids(rows) != list(without)


def test_continue_with_flags_overrides_and_the_chat_keeps_them(
    tiny_llama_dir, french_chat, model, capsys
):
    _rows, first = french_chat
    conv = first["conversation_id"]
    base = ["chat", "--continue", str(conv), "--model", str(tiny_llama_dir), "--json"]
    assert main([*base, "--system", "Answer in German.", "--temperature", "0", "Again"]) == 0
    rows = json_lines(capsys.readouterr().out)
    assert rows[-1]["settings"]["temperature"] == 0.0
    chat = saved(conv)
    assert chat.system_prompt == "Answer in German." and chat.settings.temperature == 0.0
    assert chat.settings.max_new_tokens == 4  # what the line did not name stays the chat's
    messages = [
        Message("system", "Answer in German."),
        Message("user", "Hi"),
        Message("assistant", first["text"]),
        Message("user", "Again"),
    ]
    assert phase_ids(rows) == list(model.render_prompt(messages, 4).prompt_ids)


def test_branch_reads_the_chats_saved_system_prompt(tiny_llama_dir, french_chat, capsys):
    rows, done = french_chat
    tokens = [r for r in rows if r["type"] == "token"]
    alt = next(a for a in tokens[1]["top_logprobs"] if a["id"] != tokens[1]["id"])
    argv = ["branch", str(done["conversation_id"]), "--message", str(done["message_id"])]
    argv += ["--at", "1", "--token", str(alt["id"]), "--model", str(tiny_llama_dir), "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    branched = json_lines(captured.out)
    assert phase_ids(branched) == phase_ids(rows)  # the same prompt as the original reply
    assert "prompt differs" not in captured.err


def test_export_writes_the_chats_settings(french_chat, capsys):
    _rows, done = french_chat
    conv = done["conversation_id"]
    assert main(["export", str(conv), "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["version"] == 2 and exported["system_prompt"] == FRENCH
    assert exported["settings"]["temperature"] == 0.9 and exported["settings"]["seed"] == 5
    assert main(["export", str(conv), "--format", "md"]) == 0
    markdown = capsys.readouterr().out
    assert f"System prompt:\n\n> {FRENCH}\n" in markdown
    assert "Settings: temperature 0.9, top-k " in markdown and "seed 5" in markdown
