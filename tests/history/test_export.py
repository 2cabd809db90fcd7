"""Export: JSON parses and matches what was saved (OpenAI's logprobs shape); Markdown reads as a
chat log. Also the `history` and `export` subcommands, run through their argparse registration."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import pytest

from desktop.history import History, HistoryError
from desktop.history_export import to_json, to_markdown
from tests.history.records import make_done, make_prompt, make_steps


@pytest.fixture
def saved(tmp_path):
    """A conversation in the default database: a user message, a reply, a stopped reply."""
    steps = make_steps(12, top=4)
    with History() as history:
        conv = history.create_conversation("Egg timer", "SmolLM2-135M-Instruct")
        history.add_user_message(conv, "How long do I boil an egg?")
        history.add_assistant_message(conv, make_done(steps), steps, "SmolLM2-135M-Instruct")
        history.add_assistant_message(
            conv,
            make_done(steps[:3], "cancelled"),
            steps[:3],
            "SmolLM2-135M-Instruct",
            make_prompt(),
        )
        yield conv, history.conversation(conv), history.messages(conv)


def _float_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def test_export_json_parses_and_matches_what_was_saved(saved):
    _conv, summary, messages = saved
    data = json.loads(to_json(summary, messages))

    assert (data["id"], data["title"], data["model"]) == (summary.id, "Egg timer", summary.model)
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "assistant"]
    assert [m["content"] for m in data["messages"]] == [m.text for m in messages]
    assert "logprobs" not in data["messages"][0]

    for exported, stored in zip(data["messages"][1:], messages[1:], strict=True):
        assert exported["partial"] == stored.partial
        assert (
            exported["seed"] == 2**64 - 1 and exported["finish_reason"] == stored.done.finish_reason
        )
        assert exported["settings"]["stop_strings"] == ["\n\n", "User:"]
        assert exported["settings"]["temperature"] == 0.1 + 0.2  # exact
        assert exported["usage"]["completion_tokens"] == len(stored.steps)
        content = exported["logprobs"]["content"]
        assert len(content) == len(stored.steps)
        for entry, step in zip(content, stored.steps, strict=True):
            assert entry["token"] == step.token
            assert entry["logprob"] == _float_or_none(step.logprob)
            assert entry["bytes"] == list(step.bytes)
            assert bytes(entry["bytes"]) == step.bytes
            assert (entry["id"], entry["rank"]) == (step.id, step.rank)
            assert entry["prob"] == step.prob and entry["entropy"] == step.entropy
            assert entry["text"] == step.text
            assert [
                (a["token"], a["logprob"], bytes(a["bytes"]), a["id"], a["prob"])
                for a in entry["top_logprobs"]
            ] == [(a.token, _float_or_none(a.logprob), a.bytes, a.id, a.prob) for a in step.top]
    assert [m["partial"] for m in data["messages"][1:]] == [False, True]
    # -inf logprobs (a token the model ruled out) are null: the file is strict JSON
    assert data["messages"][1]["logprobs"]["content"][0]["top_logprobs"][-1]["logprob"] is None


def test_export_markdown_is_a_readable_transcript(saved):
    _conv, summary, messages = saved
    md = to_markdown(summary, messages)
    assert md.startswith("# Egg timer\n")
    assert "## You · " in md and "How long do I boil an egg?" in md
    assert md.count("## Assistant (SmolLM2-135M-Instruct) · ") == 2
    assert messages[1].text.rstrip() in md
    assert "*12 tokens · TTFT 123 ms · 0.1 tokens/s · temperature 0.3, top-k 40" in md
    assert "*stopped before the end · 3 tokens" in md


def test_greedy_and_unstarted_replies_export_as_the_window_shows_them(tmp_path):
    """QA 3, defects 4 and 12: a greedy reply exported a seed (it draws nothing) and top-p (which
    does not act on it); a reply stopped before its first token exported "0 tokens · TTFT 0 ms"."""
    steps = make_steps(4, top=2)
    greedy = dataclasses.replace(
        make_done(steps), settings=dataclasses.replace(make_done(steps).settings, temperature=0.0)
    )
    unstarted = dataclasses.replace(make_done((), "cancelled"), ttft_ms=0.0)
    with History() as history:
        conv = history.create_conversation("Greedy", "m")
        history.add_user_message(conv, "Hi")
        history.add_assistant_message(conv, greedy, steps, "m")
        history.add_assistant_message(conv, unstarted, (), "m")
        summary, messages = history.conversation(conv), history.messages(conv)
    data = json.loads(to_json(summary, messages))
    assert data["messages"][1]["seed"] is None and data["messages"][2]["seed"] is not None
    md = to_markdown(summary, messages)
    assert "tokens/s · greedy, repetition penalty 1.1 · CPUExecutionProvider*" in md
    assert "*stopped before the first token · CPUExecutionProvider*" in md
    assert "seed" not in md.split("## Assistant")[1]


def _cli(argv):
    from desktop.cli_history import register

    parser = argparse.ArgumentParser(prog="tokenglass")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_history_lists_and_searches(saved, capsys):
    conv, *_ = saved
    assert _cli(["history"]) == 0
    out = capsys.readouterr().out
    assert "Egg timer" in out and f"{conv:>5}" in out

    assert _cli(["history", "--json", "--search", "boil"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["id"], c["title"], c["message_count"]) for c in listed] == [(conv, "Egg timer", 3)]

    assert _cli(["history", "--json", "--search", "zebra"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_cli_export_to_stdout_and_to_a_file(saved, capsys, tmp_path):
    conv, summary, messages = saved
    assert _cli(["export", str(conv), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(to_json(summary, messages))

    out = tmp_path / "chat.md"
    assert _cli(["export", str(conv), "--format", "md", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == to_markdown(summary, messages)

    with pytest.raises(HistoryError, match="no saved conversation with id 999") as err:
        _cli(["export", "999", "--format", "md"])
    assert err.value.exit_code == 2  # desktop.cli exits with it, as `branch` and `inspect` do


def test_export_has_the_tree_and_markdown_names_versions(tmp_path):
    """`messages` stays the active path; `tree` has every version with its parent and its own
    per-token logprobs; Markdown marks a reply that has other versions and where a branch
    left its original."""
    from desktop.history import StoredBranch

    steps = make_steps(6, top=3)
    with History() as history:
        conv = history.create_conversation("Versions", "m")
        user = history.add_user_message(conv, "Name a city")
        first = history.add_assistant_message(conv, make_done(steps), steps, "m", parent_id=user)
        second = history.add_assistant_message(
            conv, make_done(steps[:2]), steps[:2], "m", parent_id=user
        )
        picked = dataclasses.replace(steps[3], index=2, forced=True, picked=True)
        branch_steps = (*steps[:2], picked)
        point = StoredBranch(first, 2, steps[2].id, steps[2].token, picked.id)
        third = history.add_assistant_message(
            conv, make_done(branch_steps), branch_steps, "m", parent_id=user, branch=point
        )
        history.set_active(conv, second)
        summary, messages, tree = (
            history.conversation(conv),
            history.messages(conv),
            history.tree(conv),
        )
    data = json.loads(to_json(summary, messages, tree))
    assert [m["id"] for m in data["messages"]] == [user, second]
    # the chat list and `history` count what the window shows (QA: "4 messages" for these two)
    assert summary.message_count == len(data["messages"]) == 2
    by_id = {m["id"]: m for m in data["tree"]}
    assert list(by_id) == [user, first, second, third]
    assert [by_id[i]["parent_id"] for i in by_id] == [None, user, user, user]
    assert [by_id[i]["active"] for i in by_id] == [True, False, True, False]
    assert by_id[third]["version"] == {"index": 3, "count": 3}
    assert [len(by_id[i]["logprobs"]["content"]) for i in (first, second, third)] == [6, 2, 3]
    assert by_id[third]["logprobs"]["content"][2]["picked"] is True
    assert "picked" not in by_id[first]["logprobs"]["content"][2]
    assert by_id[third]["branch"] == {
        "source_id": first,
        "index": 2,
        "replaced_id": steps[2].id,
        "replaced_token": steps[2].token,
        "picked_id": picked.id,
    }
    assert {"id", "parent_id", "role", "content"} <= set(by_id[user])

    md = to_markdown(summary, messages, tree)
    assert md.count("## Assistant (m) · ") == 1 and " · version 2 of 3\n" in md
    assert "## You · " in md and "version 1 of 1" not in md
    history_md = to_markdown(summary, [m for m in tree if m.id in (user, third)], tree)
    assert " · version 3 of 3\n" in history_md
    assert f'continued from version 1 at token 2: "{steps[2].token}" replaced by' in history_md


def test_a_one_token_reply_says_1_token_and_no_rate(tmp_path):
    """QA 4: a reply stopped after its first token showed "1 tokens · ... · 0.0 tokens/s" in the
    window and the Markdown export (no decode step ran, so there is no rate to show)."""
    steps = make_steps(1, top=2)
    one = dataclasses.replace(make_done(steps, "cancelled"), decode_tokens_per_s=0.0)
    with History() as history:
        conv = history.create_conversation("One", "m")
        history.add_user_message(conv, "Hi")
        history.add_assistant_message(conv, one, steps, "m")
        summary, messages = history.conversation(conv), history.messages(conv)
    md = to_markdown(summary, messages)
    assert f"· 1 token · TTFT {one.ttft_ms:.0f} ms · temperature" in md
    assert "tokens/s" not in md.split("## Assistant")[1]
