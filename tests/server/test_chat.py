"""Chat completions through a real server, with OpenAI's own Python client: the same tokens and
logprobs as the engine gives in-process, whole or streamed, seeded, and 8 clients at once."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from desktop.engine.events import GenerationSettings, Message, TokenStep

PLAIN = {"repetition_penalty": 1.0}  # the model's own argmax at temperature 0


def engine_reply(engine, text: str, max_tokens: int) -> list[TokenStep]:
    settings = GenerationSettings(temperature=0.0, max_new_tokens=max_tokens, top_logprobs=10)
    records = engine.generate([Message("user", text)], settings)
    return [r for r in records if isinstance(r, TokenStep)]


def check_logprobs(entries, count: int) -> None:
    """Each entry: `count` alternatives, most likely first, the chosen token first (greedy)."""
    for entry in entries:
        top = entry.top_logprobs
        assert len(top) == count
        assert [t.logprob for t in top] == sorted((t.logprob for t in top), reverse=True)
        assert top[0].token == entry.token and math.isclose(top[0].logprob, entry.logprob)


def test_models_lists_the_loaded_model(client, server):
    assert [m.id for m in client.models.list().data] == [server.model]
    assert client.models.retrieve(server.model).id == server.model


def test_a_greedy_reply_with_logprobs_is_the_engines(client, server, engine):
    reply = client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=12,
        logprobs=True,
        top_logprobs=5,
        extra_body=PLAIN,
    )
    choice = reply.choices[0]
    entries = choice.logprobs.content
    expected = engine_reply(engine, "What is the capital of France?", 12)
    assert [e.model_extra["id"] for e in entries] == [s.id for s in expected]
    assert [e.logprob for e in entries] == pytest.approx([s.logprob for s in expected], abs=1e-6)
    check_logprobs(entries, 5)
    # the tokens join to the content: their text as the reply shows it, and their bytes
    assert "".join(e.model_extra["text"] for e in entries) == choice.message.content
    ids = [e.model_extra["id"] for e in entries]
    assert engine.tokenizer.decode(ids) == choice.message.content
    assert choice.finish_reason == "length" and choice.message.role == "assistant"
    assert reply.usage.completion_tokens == len(entries) == 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12


def test_a_streamed_reply_equals_the_whole_one(client, server):
    asked = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Hello world!"}],
        "temperature": 0,
        "max_completion_tokens": 10,
        "logprobs": True,
        "top_logprobs": 3,
        "extra_body": PLAIN,
    }
    whole = client.chat.completions.create(**asked)
    chunks = list(
        client.chat.completions.create(**asked, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    token_chunks = [c for c in chunks if c.choices and c.choices[0].logprobs is not None]
    assert all(len(c.choices[0].logprobs.content) == 1 for c in token_chunks)
    entries = [c.choices[0].logprobs.content[0] for c in token_chunks]
    check_logprobs(entries, 3)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.choices[0].message.content
    assert [e.token for e in entries] == [e.token for e in whole.choices[0].logprobs.content]
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert all(c.usage is None for c in chunks[:-1])


def test_no_logprobs_unless_asked(client, server):
    reply = client.chat.completions.create(
        model=server.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert reply.choices[0].logprobs is None and reply.usage.completion_tokens == 3


def test_the_same_seed_gives_the_same_reply(client, server):
    def sampled(seed: int):
        return client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": "Tell me a story"}],
            temperature=1.0,
            max_tokens=16,
            seed=seed,
            logprobs=True,
        )

    first, again, other = sampled(1234), sampled(1234), sampled(99)
    ids = [[e.model_extra["id"] for e in r.choices[0].logprobs.content] for r in (first, again)]
    assert ids[0] == ids[1] and first.choices[0].message.content == again.choices[0].message.content
    assert first.model_extra["tokenglass"]["seed"] == 1234
    other_ids = [e.model_extra["id"] for e in other.choices[0].logprobs.content]
    assert other_ids != ids[0]  # the seed is what made them equal


def test_stop_strings_end_the_reply_before_them(client, server, engine):
    expected = "".join(s.text for s in engine_reply(engine, "Numbers 0 1 2", 12))
    stop = expected[3:5]
    assert stop.strip()
    reply = client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Numbers 0 1 2"}],
        temperature=0,
        max_tokens=12,
        stop=[stop, "never seen"],
        extra_body=PLAIN,
    )
    assert reply.choices[0].message.content == expected[: expected.index(stop)]
    assert reply.choices[0].finish_reason == "stop"


def test_eight_concurrent_requests_all_get_their_own_answer(server, engine):
    from openai import OpenAI

    prompts = [f"Question number {i}: what is {i} + {i}?" for i in range(8)]

    def ask(prompt: str) -> str:
        with OpenAI(base_url=server.url, api_key="test-key-123", max_retries=0) as own:
            reply = own.chat.completions.create(
                model=server.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=0,
                max_tokens=8,
                extra_body=PLAIN,
            )
        return reply.choices[0].message.content

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, prompts))
    expected = ["".join(s.text for s in engine_reply(engine, p, 8)) for p in prompts]
    assert answers == expected
