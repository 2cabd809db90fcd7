"""A client that leaves mid-stream cancels its run: the next request is answered at once.

On `long_server` (16,384 positions, `--queue 0`): a greedy reply of 16,000 tokens takes many
seconds here, and while it runs a second request gets 503 (the queue holds nobody); once its
client disconnects, the run ends within one decode step and the next request is answered.
"""

from __future__ import annotations

import http.client
import json
import socket
import time

from desktop.history import History
from tests.server.conftest import API_KEY, Server


def open_stream(server: Server, max_tokens: int) -> tuple[http.client.HTTPConnection, object]:
    conn = http.client.HTTPConnection(*server.address, timeout=60)
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": True,
        "logprobs": True,
    }
    conn.request("POST", "/v1/chat/completions", json.dumps(body).encode())
    response = conn.getresponse()
    assert response.status == 200
    return conn, response


def short_request(server: Server) -> tuple[int, dict]:
    body = {"model": server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    status, _, reply = server.request("POST", "/chat/completions", body)
    return status, reply


def test_a_disconnect_mid_stream_frees_the_model_within_2_s(long_server):
    conn, response = open_stream(long_server, 16000)
    events = [response.readline() for _ in range(8)]  # the role chunk and some tokens
    assert sum(e.startswith(b"data: {") for e in events) >= 3
    status, reply = short_request(long_server)  # the stream holds the model; nobody may wait
    assert status == 503 and reply["error"]["code"] == "queue_full"
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    left = time.monotonic()
    while True:  # the cancel lands within one decode step; until then the queue is still full
        status, reply = short_request(long_server)
        if status != 503 or time.monotonic() - left > 2.0:
            break
        time.sleep(0.05)
    assert status == 200, reply
    assert time.monotonic() - left < 2.0
    assert reply["usage"]["completion_tokens"] == 2


def test_a_client_waiting_in_the_queue_that_leaves_is_never_run(server):
    """On the main server (a queue of 8, chats saved): a request that waits behind a long one
    and leaves is cancelled before it runs, so no reply to it is saved; the long one and the
    next request are unaffected."""
    auth = {"Authorization": f"Bearer {API_KEY}"}

    def body(text: str, max_tokens: int) -> bytes:
        messages = [{"role": "user", "content": text}]
        asked = {"model": server.model, "messages": messages, "max_tokens": max_tokens}
        return json.dumps({**asked, "temperature": 0}).encode()

    first = http.client.HTTPConnection(*server.address, timeout=60)
    first.request("POST", "/v1/chat/completions", body("the long one", 200), auth)
    waiting = http.client.HTTPConnection(*server.address, timeout=60)
    waiting.request("POST", "/v1/chat/completions", body("left while waiting", 200), auth)
    waiting.sock.shutdown(socket.SHUT_RDWR)
    waiting.close()
    reply = json.loads(first.getresponse().read())
    first.close()
    assert reply["choices"][0]["finish_reason"] in ("stop", "length")
    status, _, after = server.request(
        "POST", "/chat/completions", json.loads(body("and after", 2)), auth
    )
    assert status == 200 and after["usage"]["completion_tokens"] == 2
    with History(server.home / "history.sqlite3") as history:
        assert len(history.list_conversations("the long one")) == 1
        assert history.list_conversations("left while waiting") == []
