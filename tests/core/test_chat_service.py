"""The chat service on a real tiny model: one run at a time, a bounded queue, cancel, finish."""

from __future__ import annotations

import threading

import pytest

from desktop.chat_service import ChatService, NoModelError, QueueFullError, RunRequest
from desktop.engine.chat import load_model
from desktop.engine.errors import EmptyMessageError
from desktop.engine.events import GenerationDone, GenerationSettings, Message, TokenStep

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def model(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir, provider="cpu", threads=1)
    yield loaded
    loaded.close()


def request(text: str, settings: GenerationSettings = GREEDY) -> RunRequest:
    return RunRequest((Message("user", text),), settings)


def test_a_run_yields_the_engines_records_and_finish_sees_them(model):
    service = ChatService(model)
    seen = {}
    handle = service.submit(request("hello"), finish=lambda result: seen.setdefault("r", result))
    records = list(handle)
    assert isinstance(records[-1], GenerationDone)
    direct = list(model.generate([Message("user", "hello")], GREEDY))
    assert [r.id for r in records if isinstance(r, TokenStep)] == [
        r.id for r in direct if isinstance(r, TokenStep)
    ]
    assert handle.wait(5)
    assert seen["r"].done == records[-1] and len(seen["r"].steps) == records[-1].completion_tokens
    assert [p.phase for p in seen["r"].phases] == ["tokenize", "prefill", "decode"]
    service.close()


def test_requests_run_one_at_a_time_in_order_and_all_answer(model):
    service = ChatService(model, max_waiting=8)
    handles = [service.submit(request(f"message {i}")) for i in range(6)]
    finals = [list(h)[-1] for h in handles]
    assert all(
        isinstance(f, GenerationDone) and f.finish_reason in ("stop", "length") for f in finals
    )
    expected = [
        list(model.generate([Message("user", f"message {i}")], GREEDY))[-1].text for i in range(6)
    ]
    assert [f.text for f in finals] == expected
    service.close()


def test_a_full_queue_refuses_with_a_reason_and_cancel_frees_it(model):
    service = ChatService(model, max_waiting=1)
    gate = threading.Event()
    first = service.submit(request("one"), finish=lambda _r: gate.wait(10))
    for _ in range(200):  # until the first has left the queue (it then holds the model)
        if service.waiting == 0:
            break
        threading.Event().wait(0.05)
    queued = [service.submit(request("two"))]
    with pytest.raises(QueueFullError, match="1 request"):
        service.submit(request("three"))
    for h in queued:
        h.cancel()
    gate.set()
    for h in [first, *queued]:
        assert h.wait(10)
    cancelled = [list(h)[-1] for h in queued]
    assert all(d.finish_reason == "cancelled" and d.completion_tokens == 0 for d in cancelled)
    assert service.wait_idle(5) and not service.busy
    service.close()


def test_an_engine_refusal_reaches_the_consumer_and_the_next_run_goes_on(model):
    service = ChatService(model)
    handle = service.submit(request("   "))
    with pytest.raises(EmptyMessageError):
        list(handle)
    assert isinstance(list(service.submit(request("hi")))[-1], GenerationDone)
    service.close()


def test_no_model_is_refused():
    with pytest.raises(NoModelError):
        ChatService().submit(request("hi"))


def test_a_request_with_forced_ids_runs_a_branch(model):
    """RunRequest.forced_ids reach the engine: the reply starts with them, marked forced, the
    last one picked."""
    service = ChatService(model)
    original = [r for r in service.submit(request("hello")) if isinstance(r, TokenStep)]
    forced = (original[0].id, original[1].id, original[2].top[1].id)
    branch = RunRequest((Message("user", "hello"),), GREEDY, forced_ids=forced)
    steps = [r for r in service.submit(branch) if isinstance(r, TokenStep)]
    assert tuple(s.id for s in steps[:3]) == forced
    assert [(s.forced, s.picked) for s in steps[:4]] == [
        (True, False),
        (True, False),
        (True, True),
        (False, False),
    ][: len(steps[:4])]
    service.close()
