"""End to end on the real default model (SmolLM2-135M-Instruct), as `make model` builds it."""

from __future__ import annotations

import json
import math

import pytest

from desktop.__main__ import main
from desktop.engine.chat import load_model
from desktop.engine.events import GenerationDone, GenerationSettings, Message

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(default_model_dir):
    return load_model(default_model_dir, provider="cpu", threads=2)


def test_cli_answers_paris_with_consistent_logprobs(default_model_dir, capsys):
    argv = ["chat", "--model", str(default_model_dir), "--temperature", "0"]
    argv += ["--max-new-tokens", "24", "--json", "What is the capital of France?"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    tokens, done = [r for r in rows if r["type"] == "token"], rows[-1]
    assert done["type"] == "done" and "Paris" in done["text"]
    assert done["finish_reason"] == "stop"  # C2: stops at the first <|im_end|>
    assert "<|im_end|>" not in done["text"]
    for row in tokens:
        assert row["rank"] == 0 and row["top_logprobs"][0]["id"] == row["id"]
        assert math.isclose(row["top_logprobs"][0]["logprob"], row["logprob"], rel_tol=1e-6)
        probs = [math.exp(a["logprob"]) for a in row["top_logprobs"]]
        assert all(math.isfinite(p) for p in probs) and sum(probs) <= 1.0 + 1e-6
        assert math.isfinite(row["entropy"]) and row["entropy"] >= 0


def test_plain_cli_prints_the_answer(default_model_dir, capsys):
    argv = ["chat", "--model", str(default_model_dir), "--temperature", "0"]
    assert main([*argv, "--max-new-tokens", "24", "What is the capital of France?"]) == 0
    assert "Paris" in capsys.readouterr().out


def test_prompt_has_one_bos_and_ends_with_assistant_header(model):
    prompt = model.render_prompt([Message("user", "Hi")])
    assert prompt.prompt_text.endswith("<|im_start|>assistant\n")  # B2
    assert prompt.prompt_ids[0] == 1 and prompt.prompt_ids[1] != 1  # B1


def test_real_tokenizer_streams_emoji_and_round_trips(model):
    tok = model.tokenizer
    ids = tok.encode("🤗")
    stream = tok.stream()
    chunks = [stream.feed(i) for i in ids]
    assert len(ids) > 1 and chunks[:-1] == [""] * (len(ids) - 1) and chunks[-1] == "🤗"  # A1
    for text in ["  hello", "héllo 😀", "Dear [Name], I hope this email finds you well."]:
        assert tok.decode(tok.encode(text)) == text
    pieces = model.tokenize("héllo 😀")
    assert b"".join(p.bytes for p in pieces) == "héllo 😀".encode()


def test_greedy_reply_is_reproducible_and_sampled_reply_follows_seed(model):
    chat = [Message("user", "Name three colors.")]
    settings = GenerationSettings(temperature=0.8, top_p=0.9, max_new_tokens=12, seed=7)

    def reply():
        return next(e for e in model.generate(chat, settings) if isinstance(e, GenerationDone))

    first = reply()
    assert first.seed == 7 and first.text == reply().text


def test_chunked_prefill_equals_one_run_on_the_default_graph(model):
    import numpy as np

    ids = list(model.render_prompt([Message("user", "the cat sat on the mat " * 100)]).prompt_ids)
    assert len(ids) > 2 * 256
    whole = model._stepper.prefill(ids, chunk=len(ids))  # float32[vocab]
    model._stepper.forget()  # the whole prompt again, not the cached prefix
    chunked = model._stepper.prefill(ids)  # PREFILL_CHUNK tokens per run
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)
