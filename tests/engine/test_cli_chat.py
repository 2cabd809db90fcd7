"""`tokenglass chat | tokenize | models` through the real entry point (desktop.__main__.main)."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import pytest

from desktop import paths
from desktop.__main__ import main
from desktop.cli_chat import finish_note, stop_string
from desktop.engine.events import GenerationDone, GenerationSettings
from desktop.history import History


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_chat_json_lines_have_openai_logprobs_and_done(tiny_llama_dir, capsys):
    argv = ["chat", "--model", str(tiny_llama_dir), "--temperature", "0"]
    assert main([*argv, "--max-new-tokens", "5", "--top-logprobs", "3", "--json", "Hi"]) == 0
    rows = json_lines(capsys.readouterr().out)
    tokens, done = [r for r in rows if r["type"] == "token"], rows[-1]
    assert done["type"] == "done" and done["completion_tokens"] == len(tokens) == 5
    # phases: tokenize and prefill before the first token, the decode summary after the last
    assert [r["type"] for r in rows] == ["phase", "phase", *["token"] * 5, "phase", "done"]
    tokenize, prefill, decode = (r for r in rows if r["type"] == "phase")
    assert [tokenize["phase"], prefill["phase"], decode["phase"]] == [
        "tokenize",
        "prefill",
        "decode",
    ]
    assert tokenize["tokens"] == len(tokenize["ids"]) == done["prompt_tokens"]
    assert prefill["tokens"] + prefill["reused"] == done["prompt_tokens"]
    assert decode["tokens"] == 4 and decode["ms"] > 0 and decode["tokens_per_s"] > 0
    assert done["text"] == "".join(t["text"] for t in tokens)
    assert done["seed"] is None  # greedy draws nothing
    for row in tokens:
        assert {
            "token",
            "logprob",
            "bytes",
            "top_logprobs",
            "id",
            "prob",
            "rank",
            "entropy",
        } <= set(row)
        assert row["rank"] == 0 and len(row["top_logprobs"]) == 3
        assert row["top_logprobs"][0]["id"] == row["id"]
        assert math.isclose(row["top_logprobs"][0]["logprob"], row["logprob"], rel_tol=1e-6)
        assert sum(math.exp(a["logprob"]) for a in row["top_logprobs"]) <= 1.0
        assert all(0 <= b < 256 for b in row["bytes"])
        assert row["sampler"] == [  # greedy: the draw alone, one candidate, the model's top
            {"stage": "draw", "candidates": 1, "mass": row["prob"], "rank": 0}
        ]


def test_sampled_reply_reports_its_seed(tiny_llama_dir, capsys):
    argv = ["chat", "--model", str(tiny_llama_dir), "--temperature", "0.8", "--json"]
    assert main([*argv, "--max-new-tokens", "3", "--seed", "12", "Hi"]) == 0
    assert json_lines(capsys.readouterr().out)[-1]["seed"] == 12
    assert main([*argv, "--max-new-tokens", "3", "Hi"]) == 0
    assert isinstance(json_lines(capsys.readouterr().out)[-1]["seed"], int)  # drawn, reported


def test_chat_plain_streams_the_reply(tiny_llama_dir, capsys):
    argv = ["chat", "--model", str(tiny_llama_dir), "--temperature", "0", "--max-new-tokens", "5"]
    assert main([*argv, "--json", "Hi"]) == 0
    reply = json_lines(capsys.readouterr().out)[-1]["text"]
    assert main([*argv, "Hi"]) == 0
    assert capsys.readouterr().out == reply + "\n"


def test_chat_reads_turns_from_stdin(tiny_llama_dir, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("Hi\n\nHello again\n"))
    argv = ["chat", "--model", str(tiny_llama_dir), "--max-new-tokens", "3", "--json"]
    assert main(argv) == 0
    dones = [r for r in json_lines(capsys.readouterr().out) if r["type"] == "done"]
    assert len(dones) == 2 and dones[1]["prompt_tokens"] > dones[0]["prompt_tokens"]


def test_missing_default_model_says_how_to_build_it(capsys):
    assert main(["chat", "Hi"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "python -m model_export default" in err


def test_failures_are_one_line_and_non_zero(tmp_path, capsys):
    assert main(["chat", "--model", str(tmp_path), "Hi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tokenglass: ") and "config.json is missing" in err
    assert err.count("\n") == 1


def test_tokenize_json_gives_ids_and_byte_spans(tiny_llama_dir, capsys):
    assert main(["tokenize", "--model", str(tiny_llama_dir), "--json", "héllo 😀"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["count"] == len(out["tokens"]) > 0
    assert bytes(b for t in out["tokens"] for b in t["bytes"]) == "héllo 😀".encode()
    assert out["tokens"][0]["start"] == 0 and out["tokens"][-1]["end"] == len("héllo 😀")


def test_models_lists_installed(tiny_llama_dir, capsys):
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    shutil.copytree(tiny_llama_dir, paths.models_dir() / "tiny")
    assert main(["models", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["family"], row["precision"], row["kind"]) == (
        "tiny",
        "llama",
        "fp32",
        "decoder",
    )
    assert main(["models"]) == 0
    assert "tiny" in capsys.readouterr().out


@pytest.mark.parametrize("provider", ["cuda", "dml", "coreml"])
def test_unavailable_provider_warns_and_answers(tiny_llama_dir, capsys, provider):
    argv = ["chat", "--model", str(tiny_llama_dir), "--provider", provider]
    assert main([*argv, "--max-new-tokens", "2", "Hi"]) == 0
    captured = capsys.readouterr()
    assert "running on CPU" in captured.err and captured.out.strip() != ""


def test_chat_is_saved_in_history_with_its_token_records(tiny_llama_dir, capsys):
    argv = ["chat", "--model", str(tiny_llama_dir), "--temperature", "0", "--max-new-tokens", "4"]
    assert main([*argv, "--json", "Hello there"]) == 0
    reply = json_lines(capsys.readouterr().out)
    assert main(["history", "--json"]) == 0
    conversations = json.loads(capsys.readouterr().out)
    assert len(conversations) == 1 and conversations[0]["message_count"] == 2
    assert main(["export", str(conversations[0]["id"]), "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    user, assistant = exported["messages"]
    assert user["content"] == "Hello there"
    assert assistant["content"] == reply[-1]["text"]
    saved = assistant["logprobs"]["content"]
    printed = [t for t in reply if t["type"] == "token"]
    assert [t["id"] for t in saved] == [t["id"] for t in printed]
    assert [t["sampler"] for t in saved] == [t["sampler"] for t in printed]
    phases = [{k: v for k, v in r.items() if k != "type"} for r in reply if r["type"] == "phase"]
    assert assistant["phases"] == phases  # the reply's pipeline, saved and exported


def test_chat_no_save_leaves_history_empty(tiny_llama_dir, capsys):
    argv = ["chat", "--model", str(tiny_llama_dir), "--max-new-tokens", "2", "--no-save", "Hi"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    ("template", "fault"),
    [
        ("{{ 1/0 }}", "chat template failed: ZeroDivisionError: division by zero"),
        ("{{ 'x' * 10**10 }}", "chat template was stopped"),
        ("", "chat template is empty"),
    ],
)
def test_broken_chat_template_is_one_line_not_a_traceback(
    tiny_llama_dir, tmp_path, capsys, template, fault
):
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, folder)
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    assert main(["chat", "--model", str(folder), "--no-save", "Hi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tokenglass: The model's") and fault in err and err.count("\n") == 1


# QA defect 5: --stop reads only \n, \t and \\; other text (non-ASCII, other backslashes) as typed.
@pytest.mark.parametrize(
    ("typed", "stop"),
    [
        ("é", "é"),
        ("日本", "日本"),
        ("C:\\\\new", "C:\\new"),
        ("a\\nb", "a\nb"),
        ("\\t", "\t"),
        ("\\x41\\u00e9", "\\x41\\u00e9"),
        ("end\\", "end\\"),
    ],
)
def test_stop_strings_read_only_three_escapes(typed, stop):
    assert stop_string(typed) == stop


def test_stop_string_reaches_the_settings_as_typed(tiny_llama_dir, capsys):
    argv = ["chat", "--model", str(tiny_llama_dir), "--max-new-tokens", "2", "--no-save"]
    assert main([*argv, "--json", "--stop", "é", "--stop", "C:\\\\new", "Hi"]) == 0
    done = json_lines(capsys.readouterr().out)[-1]
    assert done["settings"]["stop_strings"] == ["é", "C:\\new"]


# QA defect 9: a reader that stops early ends the command quietly.
def test_closed_stdout_exits_quietly(tiny_llama_dir):
    text = "many words to tokenize " * 2000  # its JSON is far larger than a pipe buffer
    command = [sys.executable, "-m", "desktop", "tokenize", "--model", str(tiny_llama_dir)]
    process = subprocess.Popen(
        [*command, "--json", text], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout.read(100)  # read a little, then close like `head -c 100`
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_help_into_a_closed_pipe_exits_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write, as with `| head` exiting
    try:
        done = subprocess.run(
            [sys.executable, "-m", "desktop", "--help"],
            stdout=write_end,
            capture_output=False,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert b"Traceback" not in done.stderr


# QA defect 10: numbers are checked by argparse, with the allowed range in the message.
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--temperature", "-1", "must be >= 0, got -1"),
        ("--temperature", "nan", "must be >= 0"),
        ("--top-p", "5", "must be >= 0 and <= 1, got 5"),  # 0 is allowed: the top token (E3)
        ("--min-p", "1.5", "must be >= 0 and <= 1"),
        ("--top-k", "-1", "must be >= 0"),
        ("--seed", "-5", "must be >= 0 and <= 2147483647, got -5"),
        ("--seed", "2147483648", "must be >= 0 and <= 2147483647, got 2147483648"),
        ("--repetition-penalty", "0", "must be > 0"),
        ("--threads", "0", "must be >= 1"),
        ("--max-new-tokens", "0", "must be >= 1"),
        ("--top-logprobs", "51", "must be >= 0 and <= 50"),  # the window's limit
        ("--top-k", "2.5", "expected int, got '2.5'"),
    ],
)
def test_bad_numbers_are_refused_with_their_range(capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", option, value, "Hi"])
    assert exit_info.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err


def test_text_mode_says_when_a_reply_was_cut_off(tiny_llama_dir, capsys):
    argv = ["chat", "--model", str(tiny_llama_dir), "--temperature", "0", "--no-save"]
    assert main([*argv, "--max-new-tokens", "3", "Hi"]) == 0
    err = capsys.readouterr().err
    assert "tokenglass: reply cut off at max new tokens (3)" in err


def test_finish_notes():
    base = GenerationDone(
        finish_reason="stop",
        text="",
        prompt_tokens=5,
        completion_tokens=4,
        ttft_ms=1.0,
        decode_tokens_per_s=1.0,
        provider="CPUExecutionProvider",
        seed=1,
        dropped_messages=0,
        error=None,
        settings=GenerationSettings(max_new_tokens=4),
    )
    assert finish_note(base) is None
    assert "max new tokens (4)" in finish_note(dataclasses.replace(base, finish_reason="length"))
    window = dataclasses.replace(base, finish_reason="length", completion_tokens=2)
    assert "context window" in finish_note(window)
    cancelled = finish_note(dataclasses.replace(base, finish_reason="cancelled"))
    assert cancelled == "reply cancelled after 4 tokens"


def test_json_error_before_generation_is_a_json_object(tiny_llama_dir, capsys):
    assert main(["chat", "--model", str(tiny_llama_dir), "--json", "--no-save", "  "]) == 1
    captured = capsys.readouterr()
    (row,) = json_lines(captured.out)
    assert row["type"] == "error" and "message is empty" in row["message"]
    assert captured.err.startswith("tokenglass: ") and captured.err.count("\n") == 1


def test_json_done_says_why_the_provider_fell_back(tiny_llama_dir, capsys):
    argv = ["chat", "--model", str(tiny_llama_dir), "--max-new-tokens", "1", "--no-save", "--json"]
    assert main([*argv, "--provider", "cuda", "Hi"]) == 0
    done = json_lines(capsys.readouterr().out)[-1]
    assert "running on CPU" in done["provider_fallback_reason"]
    assert main([*argv, "--provider", "cpu", "Hi"]) == 0
    assert json_lines(capsys.readouterr().out)[-1]["provider_fallback_reason"] is None


def test_bytes_that_are_not_utf8_become_replacement_characters(tiny_llama_dir, capsys, monkeypatch):
    """QA 3, defect 2: argv and stdin bytes that are not UTF-8 arrive as lone surrogates (PEP 383)
    and crashed the tokenizer with a traceback. They read as U+FFFD, and the chat is saved."""
    invalid = b"hi \xff\xfe there".decode("utf-8", "surrogateescape")
    assert main(["tokenize", "--model", str(tiny_llama_dir), "--json", invalid]) == 0
    tokens = json.loads(capsys.readouterr().out)["tokens"]
    assert bytes(b for t in tokens for b in t["bytes"]).decode() == "hi \ufffd\ufffd there"
    argv = ["chat", "--model", str(tiny_llama_dir), "--max-new-tokens", "2", "--json"]
    assert main([*argv, "--system", invalid, invalid]) == 0
    assert json_lines(capsys.readouterr().out)[-1]["type"] == "done"
    monkeypatch.setattr("sys.stdin", io.StringIO(invalid + "\n"))
    assert main(argv) == 0
    assert json_lines(capsys.readouterr().out)[-1]["type"] == "done"
    saved = History(paths.history_db()).list_conversations()
    assert len(saved) == 2 and all("\ufffd" in c.title for c in saved)


class _Terminal(io.StringIO):
    """stdin as a terminal whose reader presses Ctrl-C (or Ctrl-D) at the prompt."""

    def __init__(self, interrupt: bool):
        super().__init__("")
        self.interrupt = interrupt

    def isatty(self) -> bool:
        return True

    def readline(self, *args) -> str:
        if self.interrupt:
            raise KeyboardInterrupt
        return ""


@pytest.mark.parametrize(("interrupt", "code"), [(True, 130), (False, 0)])
def test_ctrl_c_or_d_at_the_prompt_ends_on_a_new_line(
    tiny_llama_dir, capsys, monkeypatch, interrupt, code
):
    """QA 3, defect 13: the shell's prompt landed on the same line as ours."""
    monkeypatch.setattr("sys.stdin", _Terminal(interrupt))
    assert main(["chat", "--model", str(tiny_llama_dir), "--no-save"]) == code
    assert capsys.readouterr().err == "> \n"


def test_a_one_shot_reply_that_ends_cancelled_exits_130(tiny_llama_dir, monkeypatch, capsys):
    """QA 3, defect 13: Ctrl-C during `tokenglass chat MESSAGE` exited 0. A real SIGINT at the
    first token: its handler cancels the run, the reply ends "cancelled" and is saved partial."""
    import desktop.cli_reply as cli_reply

    real_print = cli_reply._print_token

    def interrupt_at_first_token(step, as_json):
        real_print(step, as_json)
        if step.index == 0:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(cli_reply, "_print_token", interrupt_at_first_token)
    argv = ["chat", "--model", str(tiny_llama_dir), "--max-new-tokens", "50", "--json", "Hi"]
    assert main(argv) == 130
    done = json_lines(capsys.readouterr().out)[-1]
    assert done["finish_reason"] == "cancelled" and done["completion_tokens"] < 50
    with History(paths.history_db()) as history:
        (reply,) = [m for m in history.messages(done["conversation_id"]) if m.role == "assistant"]
    assert reply.id == done["message_id"] and reply.partial


def test_a_model_without_a_chat_template_is_named_as_such(tiny_gpt2_dir, tiny_llama_dir, capsys):
    """QA 3, defect 9: a folder with no chat template read the chat as plain text, silently."""
    argv = ["chat", "--no-save", "--max-new-tokens", "2", "--json", "Hi"]
    assert main([*argv, "--model", str(tiny_gpt2_dir)]) == 0
    assert "has no chat template" in capsys.readouterr().err
    assert main([*argv, "--model", str(tiny_llama_dir)]) == 0
    assert "chat template" not in capsys.readouterr().err
