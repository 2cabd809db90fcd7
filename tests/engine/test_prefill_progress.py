"""Prefill progress (issue 15: a long prompt showed "Reading your message…" for 12 s with no
progress although the prefill runs in chunks): the engine reports each prefill run as a
`PrefillProgress` record whose values are the real chunk boundaries, on a tiny exported Llama
(real ONNX Runtime) with a small chunk size."""

from __future__ import annotations

import itertools
import threading

import pytest

from desktop.chat_service import ChatService
from desktop.engine import steppers
from desktop.engine.chat import load_model
from desktop.engine.events import (
    GenerationDone,
    GenerationSettings,
    Message,
    Phase,
    PrefillProgress,
    PromptInfo,
    TokenStep,
)

LONG = [Message("user", "one two three four five six seven eight nine ten eleven twelve")]
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=3)
CHUNK = 5


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(steppers, "PREFILL_CHUNK", CHUNK)


def progress_of(events) -> list[tuple[int, int, int]]:
    return [(e.done, e.total, e.reused) for e in events if isinstance(e, PrefillProgress)]


def test_progress_is_each_chunk_boundary_of_a_long_prompt(tiny_llama_dir, small_chunks):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    events = list(model.generate(LONG, GREEDY))
    n = len(events[0].prompt_ids)
    assert n > 3 * CHUNK and n % CHUNK  # several chunks, the last one short
    want = [0, *range(CHUNK, n, CHUNK), n]  # before the first run, then after each run
    assert progress_of(events) == [(done, n, 0) for done in want]
    # all of them before the prefill Phase, after the tokenize one
    kinds = [type(e).__name__ for e in events]
    first_token = kinds.index("TokenStep")
    assert kinds[: len(want) + 3] == [
        "PromptInfo",
        "Phase",
        *["PrefillProgress"] * len(want),
        "Phase",
    ]
    assert len(want) + 3 == first_token
    assert isinstance(events[-1], GenerationDone) and events[-1].error is None


def test_a_follow_up_counts_only_the_tokens_past_the_cached_prefix(tiny_llama_dir, small_chunks):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    first = list(model.generate(LONG, GREEDY))
    reply = first[-1].text
    turn2 = [*LONG, Message("assistant", reply), Message("user", "and thirteen fourteen?")]
    events = list(model.generate(turn2, GREEDY))
    prefill = next(e for e in events if isinstance(e, Phase) and e.phase == "prefill")
    progress = progress_of(events)
    reused, total = prefill.reused, prefill.tokens
    assert reused > 0 and total > 0
    want = [0, *range(CHUNK, total, CHUNK), total]
    assert progress == [(done, total, reused) for done in want]


def test_a_cancel_between_chunks_ends_the_progress_there(tiny_llama_dir, small_chunks):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    cancel = threading.Event()
    events = []
    for event in model.generate(LONG, GREEDY, cancel):
        events.append(event)
        if isinstance(event, PrefillProgress) and event.done == 2 * CHUNK:
            cancel.set()  # seen after the second chunk: the third never runs
    assert [p[0] for p in progress_of(events)] == [0, CHUNK, 2 * CHUNK]
    assert events[-1].finish_reason == "cancelled"
    assert model._stepper.position == 2 * CHUNK


def test_a_branch_reports_its_forced_prefix_with_the_prompt(tiny_llama_dir, small_chunks):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    steps = [e for e in model.generate(LONG, GREEDY) if isinstance(e, TokenStep)]
    fresh = load_model(tiny_llama_dir, provider="cpu", threads=1)  # nothing cached
    forced = (steps[0].id, steps[1].top[1].id)
    events = list(fresh.generate(LONG, GREEDY, forced_ids=forced))
    n = len(events[0].prompt_ids) + 1  # the prompt and the kept token before the picked one
    assert progress_of(events)[-1] == (n, n, 0)
    dones = [p[0] for p in progress_of(events)]
    assert all(0 < b - a <= CHUNK for a, b in itertools.pairwise(dones))


def test_an_encoder_decoder_model_reports_no_chunks(tiny_t5_dir):
    model = load_model(tiny_t5_dir, provider="cpu", threads=1)
    events = list(model.generate([Message("user", "3rd of March")], GREEDY))
    assert progress_of(events) == []
    assert isinstance(events[-1], GenerationDone) and events[-1].error is None


def test_the_chat_service_passes_progress_on_and_keeps_it_out_of_the_result(
    tiny_llama_dir, small_chunks
):
    service = ChatService(load_model(tiny_llama_dir, provider="cpu", threads=1))
    try:
        handle = service.generate(LONG, GREEDY)
        records = list(handle)
        handle.wait(30)
    finally:
        service.close()
    assert isinstance(records[0], PromptInfo)
    n = len(records[0].prompt_ids)
    assert progress_of(records)[-1] == (n, n, 0)
    # the saved result (history) holds the prompt, phases and tokens, no progress records
    assert [p.phase for p in handle.result.phases] == ["tokenize", "prefill", "decode"]
    assert len(handle.result.steps) == handle.result.done.completion_tokens
