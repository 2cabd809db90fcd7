"""Request bodies into settings (no server needed), and the legacy logprobs shape."""

from __future__ import annotations

import math

import pytest

from desktop.engine.events import Alternative, GenerationSettings, Message, TokenStep
from desktop.openai_json import legacy_logprobs_json
from desktop.server.errors import ApiError
from desktop.server.validation import RECORD_ALTERNATIVES, parse_chat, parse_completion

MODEL_DEFAULTS = GenerationSettings(
    max_new_tokens=256, temperature=0.2, top_p=0.9, repetition_penalty=1.1
)
USER = [{"role": "user", "content": "Hi"}]


def chat(**fields):
    return parse_chat({"model": "m", "messages": USER, **fields}, MODEL_DEFAULTS, 8192)


def test_fields_left_out_take_the_models_defaults_and_a_reply_may_fill_the_context():
    call = chat()
    assert call.settings == GenerationSettings(
        max_new_tokens=8192,
        temperature=0.2,
        top_p=0.9,
        repetition_penalty=1.1,
        top_logprobs=RECORD_ALTERNATIVES,
    )
    assert call.top_logprobs is None and not call.stream and not call.include_usage


def test_given_fields_replace_the_defaults():
    call = chat(
        temperature=0,
        top_p=1,
        top_k=40,
        min_p=0.05,
        repetition_penalty=1.0,
        seed=7,
        max_tokens=5,
        max_completion_tokens=9,  # the newer name wins
        stop="\n",
        logprobs=True,
        top_logprobs=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    s = call.settings
    assert (s.temperature, s.top_p, s.top_k, s.min_p, s.repetition_penalty) == (0, 1, 40, 0.05, 1)
    assert (s.seed, s.max_new_tokens, s.stop_strings, s.top_logprobs) == (7, 9, ("\n",), 20)
    assert call.top_logprobs == 20 and call.stream and call.include_usage
    assert chat(logprobs=True).top_logprobs == 0  # logprobs without alternatives
    assert chat(seed=-1).settings.seed is None  # llama.cpp's "random seed"
    assert not chat(stream_options={"include_usage": True}).include_usage  # only for streams


def test_messages_roles_and_content_parts():
    call = chat(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": None},
            {"role": "user", "content": "c"},
        ]
    )
    assert call.messages == (
        Message("system", "Be brief."),
        Message("user", "ab"),
        Message("assistant", ""),
        Message("user", "c"),
    )
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with pytest.raises(ApiError, match="image_url") as raised:
        chat(messages=image)
    assert raised.value.status == 400 and raised.value.code == "unsupported"
    with pytest.raises(ApiError, match="tool calling"):
        chat(messages=[*USER, {"role": "tool", "content": "x"}])
    with pytest.raises(ApiError, match="user message"):
        chat(messages=[{"role": "system", "content": "x"}])


def test_completions_default_to_16_tokens_and_take_one_prompt():
    call = parse_completion({"model": "m", "prompt": ["Once"], "logprobs": 0}, MODEL_DEFAULTS)
    assert call.prompt == "Once" and call.settings.max_new_tokens == 16 and call.logprobs == 0
    for fields, param in [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2]}, "prompt"),
        ({"prompt": "a", "echo": True}, "echo"),
        ({"prompt": "a", "best_of": 2}, "best_of"),
        ({"prompt": "a", "logprobs": 21}, "logprobs"),
    ]:
        with pytest.raises(ApiError) as raised:
            parse_completion({"model": "m", **fields}, MODEL_DEFAULTS)
        assert raised.value.status == 400 and raised.value.param == param


def step(index: int, token: str, text: str, logprob: float, top: list[tuple[str, float]]):
    alts = tuple(
        Alternative(i, t, t.encode(), lp, math.exp(lp), 0.0) for i, (t, lp) in enumerate(top)
    )
    return TokenStep(index, 9, token, text, token.encode(), logprob, 0.1, 0.1, 3, 1.0, alts, 1.0)


def test_legacy_logprobs_add_the_chosen_token_and_count_offsets_from_the_prompt():
    steps = [
        step(0, "He", "He", -0.5, [("He", -0.5), ("A", -1.0), ("B", -2.0)]),
        step(1, "llo", "llo", -3.0, [("x", -0.2), ("y", -0.9), ("x", -1.5)]),
    ]
    shape = legacy_logprobs_json(steps, 2, offset=10)
    assert shape["tokens"] == ["He", "llo"] and shape["token_logprobs"] == [-0.5, -3.0]
    assert shape["top_logprobs"] == [{"He": -0.5, "A": -1.0}, {"x": -0.2, "y": -0.9, "llo": -3.0}]
    assert shape["text_offset"] == [10, 12]
    assert list(shape["top_logprobs"][1]) == ["x", "y", "llo"]


def test_the_printed_address_of_a_wildcard_bind_is_one_a_client_can_reach():
    import socket

    from desktop.server.runner import base_url

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        port = sock.getsockname()[1]
        assert base_url(sock) == f"http://127.0.0.1:{port}/v1"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        assert base_url(sock) == f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
