"""The service's queue bound counts requests waiting behind a running one (max_waiting 0: none)."""

from __future__ import annotations

import threading

import pytest

from desktop.chat_service import ChatService, QueueFullError, RunRequest
from desktop.engine.chat import load_model
from desktop.engine.events import GenerationSettings, Message

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=4)


@pytest.fixture(scope="module")
def model(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir, provider="cpu", threads=1)
    yield loaded
    loaded.close()


def request(text: str) -> RunRequest:
    return RunRequest((Message("user", text),), GREEDY)


@pytest.mark.parametrize("max_waiting", [0, 2])
def test_max_waiting_requests_wait_behind_the_running_one(model, max_waiting):
    service = ChatService(model, max_waiting=max_waiting)
    gate = threading.Event()
    first = service.submit(request("one"), finish=lambda _r: gate.wait(10))
    for _ in range(200):  # until the first has left the queue (it then holds the model)
        if service.waiting == 0:
            break
        threading.Event().wait(0.05)
    queued = [service.submit(request(f"queued {i}")) for i in range(max_waiting)]
    with pytest.raises(QueueFullError):
        service.submit(request("one too many"))
    gate.set()
    for handle in [first, *queued]:
        assert list(handle)[-1].finish_reason in ("stop", "length")
    assert service.wait_idle(5)
    again = service.submit(request("after"))  # an idle service takes one, also with 0
    assert list(again)[-1].completion_tokens > 0
    service.close()
