"""The README's example on the real default model: a greedy chat reply whose token strings join to
its content, each chosen token first among its alternatives."""

from __future__ import annotations

import pytest

from tests.server.conftest import start_server, stop_server

pytestmark = pytest.mark.slow


def test_the_default_model_answers_with_logprobs_whose_tokens_join_to_the_reply(
    default_model_dir, tmp_path
):
    from openai import OpenAI

    server = start_server(default_model_dir, tmp_path / "home", "--no-save")
    try:
        with OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=120) as client:
            reply = client.chat.completions.create(
                model="SmolLM2-135M-Instruct",
                messages=[{"role": "user", "content": "What is the capital of France?"}],
                temperature=0,
                max_tokens=24,
                logprobs=True,
                top_logprobs=5,
                extra_body={"repetition_penalty": 1.0},
            )
    finally:
        stop_server(server)
    content = reply.choices[0].message.content
    entries = reply.choices[0].logprobs.content
    assert "Paris" in content
    assert "".join(e.token for e in entries) == content
    for entry in entries:
        assert entry.top_logprobs[0].token == entry.token
        assert len(entry.top_logprobs) == 5
