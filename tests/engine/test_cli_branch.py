"""`tokenglass branch` and `tokenglass chat --continue` through the real entry point, on a tiny
model and a real history file: the new reply's records, the saved versions, the ids in `done`,
and bad ids refused with exit 2 before anything is saved."""

from __future__ import annotations

import json
import math

import pytest

from desktop import paths
from desktop.__main__ import main
from desktop.history import History

SAMPLED = ["--temperature", "0.9", "--seed", "5", "--top-logprobs", "5"]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def saved_reply(tiny_llama_dir, capsys):
    """A saved one-turn chat: (its JSON Lines, the done object)."""
    argv = ["chat", "--model", str(tiny_llama_dir), *SAMPLED, "--max-new-tokens", "8", "--json"]
    assert main([*argv, "What is the capital of France?"]) == 0
    rows = json_lines(capsys.readouterr().out)
    assert len(rows) >= 5, "the tiny model's reply is too short to branch"
    return [r for r in rows if r["type"] == "token"], rows[-1]


def tree(conv_id: int):
    with History(paths.history_db()) as history:
        return history.tree(conv_id), history.messages(conv_id)


def test_chat_done_names_the_saved_conversation_and_message(tiny_llama_dir, saved_reply, capsys):
    tokens, done = saved_reply
    all_messages, path = tree(done["conversation_id"])
    assert [m.id for m in path] == [m.id for m in all_messages]
    assert path[-1].id == done["message_id"] and path[-1].role == "assistant"
    assert [s.id for s in path[-1].steps] == [t["id"] for t in tokens]
    argv = ["chat", "--model", str(tiny_llama_dir), "--max-new-tokens", "2", "--no-save", "--json"]
    assert main([*argv, "Hi"]) == 0
    unsaved = json_lines(capsys.readouterr().out)[-1]
    assert "conversation_id" not in unsaved and "message_id" not in unsaved


def test_branch_continues_a_reply_from_a_token_and_saves_a_new_version(
    tiny_llama_dir, saved_reply, capsys
):
    tokens, done = saved_reply
    conv, original = done["conversation_id"], done["message_id"]
    index = 3
    alt = next(a for a in tokens[index]["top_logprobs"] if a["id"] != tokens[index]["id"])
    argv = ["branch", str(conv), "--message", str(original), "--at", str(index)]
    assert main([*argv, "--token", str(alt["id"]), "--model", str(tiny_llama_dir), "--json"]) == 0
    rows = json_lines(capsys.readouterr().out)
    new, new_done = [r for r in rows if r["type"] == "token"], rows[-1]
    assert [t["id"] for t in new[:index]] == [t["id"] for t in tokens[:index]]
    assert all(t["forced"] and "picked" not in t for t in new[:index])
    picked = new[index]
    assert picked["picked"] is True and picked["forced"] is True and picked["id"] == alt["id"]
    assert math.isclose(picked["logprob"], alt["logprob"], abs_tol=1e-4)
    assert all("forced" not in t and "picked" not in t for t in new[index + 1 :])
    for got, want in zip(new[:index], tokens[:index], strict=True):
        assert math.isclose(got["logprob"], want["logprob"], abs_tol=1e-4)
        assert got["rank"] == want["rank"] and got["text"] == want["text"]
    assert new_done["conversation_id"] == conv and new_done["message_id"] != original
    assert new_done["settings"]["temperature"] == 0.9  # the original reply's settings

    all_messages, path = tree(conv)
    assert [m.role for m in all_messages] == ["user", "assistant", "assistant"]
    by_id = {m.id: m for m in all_messages}
    branched = by_id[new_done["message_id"]]
    assert path[-1].id == branched.id and branched.parent_id == by_id[original].parent_id
    assert branched.branch.source_id == original and branched.branch.index == index
    assert branched.branch.replaced_id == tokens[index]["id"]
    assert branched.branch.picked_id == alt["id"]
    assert [s.picked for s in branched.steps].index(True) == index
    assert by_id[original].steps and not by_id[original].active  # the original is kept

    # the chat goes on from the branched reply, the active path's end
    argv = ["chat", "--continue", str(conv), "--model", str(tiny_llama_dir), "--json"]
    assert main([*argv, "--max-new-tokens", "3", "And Spain?"]) == 0
    follow = json_lines(capsys.readouterr().out)[-1]
    all_messages, path = tree(conv)
    assert [m.id for m in path][-3:-1] == [branched.id, path[-2].id]
    assert path[-2].text == "And Spain?" and path[-2].parent_id == branched.id
    assert path[-1].id == follow["message_id"] and follow["conversation_id"] == conv
    assert follow["prompt_tokens"] > new_done["prompt_tokens"]  # it read the earlier turns


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"conv": 999}, "There is no saved conversation with id 999."),
        ({"message": 999}, "has no message with id 999."),
        ({"message": "user"}, "is a user message; only a reply can be continued"),
        ({"at": 500}, "Token index 500 is outside message"),
        ({"at": -1}, "Token index -1 is outside message"),
        ({"token": 10**7}, "Token id 10000000 is not in"),
    ],
)
def test_branch_refuses_what_is_not_there_with_exit_2_and_saves_nothing(
    tiny_llama_dir, saved_reply, capsys, change, message
):
    _tokens, done = saved_reply
    conv, reply = done["conversation_id"], done["message_id"]
    values = {"conv": conv, "message": reply, "at": 1, "token": 5, **change}
    if values["message"] == "user":
        values["message"] = tree(conv)[0][0].id
    before = tree(conv)[0]
    argv = ["branch", str(values["conv"]), "--message", str(values["message"])]
    argv += ["--at", str(values["at"]), "--token", str(values["token"])]
    assert main([*argv, "--model", str(tiny_llama_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("tokenglass: ") and captured.err.count("\n") == 1
    assert message in captured.err and captured.out == ""
    assert tree(conv)[0] == before


def test_continue_an_unknown_conversation_is_exit_2(tiny_llama_dir, capsys):
    argv = ["chat", "--continue", "42", "--model", str(tiny_llama_dir), "--json", "Hi"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "no saved conversation with id 42" in captured.err
    assert json_lines(captured.out) == [
        {"type": "error", "message": "There is no saved conversation with id 42."}
    ]


def test_continue_reads_more_turns_from_stdin(tiny_llama_dir, saved_reply, capsys, monkeypatch):
    import io

    _tokens, done = saved_reply
    conv = done["conversation_id"]
    monkeypatch.setattr("sys.stdin", io.StringIO("one more\nand another\n"))
    argv = ["chat", "--continue", str(conv), "--model", str(tiny_llama_dir), "--json"]
    assert main([*argv, "--max-new-tokens", "2"]) == 0
    dones = [r for r in json_lines(capsys.readouterr().out) if r["type"] == "done"]
    _all, path = tree(conv)
    assert [m.text for m in path if m.role == "user"][1:] == ["one more", "and another"]
    assert [d["message_id"] for d in dones] == [m.id for m in path if m.role == "assistant"][1:]
    assert dones[1]["prompt_tokens"] > dones[0]["prompt_tokens"] > done["prompt_tokens"]
