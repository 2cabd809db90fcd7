"""Legacy completions (a raw prompt, no chat template) through a real server: the engine's
tokens in OpenAI's legacy logprobs shape, whole and streamed."""

from __future__ import annotations

import json

import pytest

from desktop.engine.events import GenerationSettings, TokenStep

PROMPT = "The quick brown fox"


def engine_completion(engine, prompt: str, max_tokens: int) -> list[TokenStep]:
    settings = GenerationSettings(temperature=0.0, max_new_tokens=max_tokens, top_logprobs=10)
    return [r for r in engine.complete(prompt, settings) if isinstance(r, TokenStep)]


def test_legacy_logprobs_are_the_engines(client, server, engine):
    reply = client.completions.create(
        model=server.model,
        prompt=PROMPT,
        max_tokens=10,
        temperature=0,
        logprobs=3,
        extra_body={"repetition_penalty": 1.0},
    )
    choice = reply.choices[0]
    expected = engine_completion(engine, PROMPT, 10)
    logprobs = choice.logprobs
    assert logprobs.tokens == [s.token for s in expected]
    assert logprobs.token_logprobs == pytest.approx([s.logprob for s in expected], abs=1e-6)
    assert choice.text == "".join(s.text for s in expected)
    offsets, position = [], len(PROMPT)  # OpenAI counts offsets from the prompt's start
    for step in expected:
        offsets.append(position)
        position += len(step.text)
    assert logprobs.text_offset == offsets
    for token, logprob, top in zip(
        logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
    ):
        assert len(top) in (3, 4)  # the 3 most likely, plus the chosen token when not among them
        assert top[token] == pytest.approx(logprob)
        assert list(top.values())[:3] == sorted(list(top.values())[:3], reverse=True)
    assert reply.usage.completion_tokens == 10 and choice.finish_reason == "length"


def test_a_streamed_completion_joins_to_the_whole_one(client, server):
    asked = {"model": server.model, "prompt": PROMPT, "max_tokens": 8, "temperature": 0}
    whole = client.completions.create(**asked, logprobs=2)
    chunks = list(client.completions.create(**asked, logprobs=2, stream=True))
    text = "".join(c.choices[0].text for c in chunks)
    assert text == whole.choices[0].text
    tokens = [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
    assert tokens == whole.choices[0].logprobs.tokens
    offsets = [
        o for c in chunks if c.choices[0].logprobs for o in c.choices[0].logprobs.text_offset
    ]
    assert offsets == whole.choices[0].logprobs.text_offset
    assert [c.choices[0].finish_reason for c in chunks][-1] == "length"


def test_completion_defaults_to_16_tokens_and_raw_sse_ends_with_done(server):
    status, _, body = server.request(
        "POST",
        "/completions",
        {"model": server.model, "prompt": PROMPT, "temperature": 0},
        {"Authorization": "Bearer test-key-123"},
    )
    assert status == 200 and body["usage"]["completion_tokens"] == 16
    assert body["choices"][0]["logprobs"] is None
    status, headers, text = server.request(
        "POST",
        "/completions",
        {"model": server.model, "prompt": PROMPT, "max_tokens": 3, "stream": True},
        {"Authorization": "Bearer test-key-123"},
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line for line in text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "length"
