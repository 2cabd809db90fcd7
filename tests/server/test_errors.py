"""Every fault in OpenAI's error object with its status (raw HTTP and the openai client), CORS
only where asked, and a bad request never disturbs the model for the next one."""

from __future__ import annotations

import openai
import pytest

from desktop.server.validation import MAX_BODY_BYTES
from tests.server.conftest import API_KEY, CORS_ORIGIN

AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def chat_body(server, **fields) -> dict:
    return {
        "model": server.model,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        **fields,
    }


def assert_error(response, status: int, param: str | None = None, code: str | None = None):
    got, _, body = response
    assert got == status, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param and (code is None or error["code"] == code)
    return error


def test_malformed_json_is_400(server):
    error = assert_error(
        server.request("POST", "/chat/completions", b'{"model": "x", "messages": [', AUTH), 400
    )
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_json"
    assert_error(server.request("POST", "/chat/completions", b"[1, 2]", AUTH), 400)
    assert_error(server.request("POST", "/chat/completions", b'{"a": NaN}', AUTH), 400)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": -1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
        ({"stop": 5}, "stop"),
        ({"seed": -2}, "seed"),
        ({"seed": 2**31}, "seed"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": None}, "model"),
    ],
)
def test_a_bad_field_is_400_naming_it(server, fields, param):
    assert_error(
        server.request("POST", "/chat/completions", chat_body(server, **fields), AUTH), 400, param
    )


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ],
)
def test_what_is_not_served_is_400_saying_so(server, fields, param):
    error = assert_error(
        server.request("POST", "/chat/completions", chat_body(server, **fields), AUTH),
        400,
        param,
        "unsupported",
    )
    assert "not supported" in error["message"]


def test_neutral_values_of_unserved_fields_pass(server):
    neutral = {"n": 1, "tools": [], "frequency_penalty": 0, "response_format": {"type": "text"}}
    status, _, body = server.request(
        "POST", "/chat/completions", chat_body(server, **neutral), AUTH
    )
    assert status == 200 and body["usage"]["completion_tokens"] == 2


def test_the_openai_client_raises_its_own_errors(client, server):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="not supported"):
        client.chat.completions.create(
            model=server.model, messages=[{"role": "user", "content": "Hi"}], n=2
        )
    wrong = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_a_missing_or_wrong_key_is_401_on_every_route(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        error = assert_error(server.request("GET", "/models", None, headers), 401)
        assert error["type"] == "authentication_error"
    assert_error(server.request("POST", "/chat/completions", chat_body(server), {}), 401)


def test_unknown_route_and_method(server):
    error = assert_error(server.request("GET", "/engines", None, AUTH), 404)
    assert error["type"] == "not_found_error"
    assert_error(server.request("GET", "/chat/completions", None, AUTH), 405)


def test_a_body_over_the_limit_is_413(server):
    big = b'{"x": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}'
    assert_error(server.request("POST", "/chat/completions", big, AUTH), 413)


def test_a_prompt_past_the_context_window_is_400(server):
    long = chat_body(server, messages=[{"role": "user", "content": "fox " * 400}])
    error = assert_error(server.request("POST", "/chat/completions", long, AUTH), 400, "messages")
    assert error["code"] == "context_length_exceeded"
    empty = {"model": server.model, "prompt": ""}
    assert_error(server.request("POST", "/completions", empty, AUTH), 400)
    status, _, body = server.request("POST", "/chat/completions", chat_body(server), AUTH)
    assert status == 200 and body["usage"]["completion_tokens"] == 2  # the model goes on


def test_no_cors_headers_unless_an_origin_is_named(server, long_server):
    origin = {"Origin": CORS_ORIGIN}
    _, headers, _ = server.request("GET", "/models", None, {**AUTH, **origin})
    assert "access-control-allow-origin" not in headers
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    status, headers, _ = long_server.request("OPTIONS", "/chat/completions", None, preflight)
    assert status == 200 and headers["access-control-allow-origin"] == CORS_ORIGIN
    _, headers, _ = long_server.request("GET", "/models", None, origin)
    assert headers["access-control-allow-origin"] == CORS_ORIGIN
    other = {"Origin": "http://evil.example"}
    _, headers, _ = long_server.request("GET", "/models", None, other)
    assert "access-control-allow-origin" not in headers
