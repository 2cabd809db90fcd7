"""The pipeline's records: phases (tokenize, prefill or encode, decode) and each token's sampler
chain, on tiny exported models (real ONNX Runtime) and on hand-made rows."""

from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np
import pytest

from desktop.engine.chat import load_model
from desktop.engine.events import (
    GenerationDone,
    GenerationSettings,
    Message,
    Phase,
    PrefillProgress,
    TokenStep,
)
from desktop.engine.sampler_chain import sampler_chain
from desktop.engine.sampling import Sampler

CHAT = [Message("user", "hello there, how are you today?")]


def timed_run(model, messages, settings):
    """(events, wall ms) of one whole reply, from the call to its GenerationDone."""
    started = time.perf_counter()
    events = list(model.generate(messages, settings))
    return events, (time.perf_counter() - started) * 1000.0


@pytest.mark.parametrize(
    ("fixture", "reads"), [("tiny_llama_dir", "prefill"), ("tiny_t5_dir", "encode")]
)
def test_phases_in_order_and_add_up_to_the_wall_time(fixture, reads, request):
    model = load_model(request.getfixturevalue(fixture))
    settings = GenerationSettings(temperature=0.0, max_new_tokens=10)
    list(model.generate(CHAT, settings))  # a first reply warms the sessions' first-run costs
    events, wall_ms = timed_run(model, CHAT, settings)
    prompt = events[0]
    phases = [e for e in events if isinstance(e, Phase)]
    assert [p.phase for p in phases] == ["tokenize", reads, "decode"]
    kinds = [type(e).__name__ for e in events if not isinstance(e, PrefillProgress)]
    assert kinds[:3] == ["PromptInfo", "Phase", "Phase"]  # both before the first token
    # a decoder-only prefill's progress comes between the tokenize and prefill phases
    at = [i for i, e in enumerate(events) if isinstance(e, PrefillProgress)]
    assert at == (list(range(2, 2 + len(at))) if reads == "prefill" else [])
    assert len(at) >= (2 if reads == "prefill" else 0)
    assert kinds[-2:] == ["Phase", "GenerationDone"]  # the decode summary after the last
    tokenize, read, decode = phases
    assert tokenize.ids == prompt.prompt_ids and tokenize.tokens == len(prompt.prompt_ids)
    assert read.tokens + read.reused == len(prompt.prompt_ids)
    steps = [e for e in events if isinstance(e, TokenStep)]
    done = events[-1]
    assert isinstance(done, GenerationDone)
    # a step runs after each token but the last, and after the last too when an end token ended it
    assert decode.tokens == len(steps) - (done.finish_reason == "length")
    assert decode.tokens_per_s == pytest.approx(decode.tokens * 1000.0 / decode.ms)
    total = sum(p.ms for p in phases)
    assert abs(total - wall_ms) <= 0.1 * wall_ms, (total, wall_ms)


def test_follow_up_reads_only_past_the_cached_prefix(tiny_llama_dir):
    model = load_model(tiny_llama_dir)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=6)
    first = list(model.generate(CHAT, settings))
    reply = first[-1].text
    turn2 = [*CHAT, Message("assistant", reply), Message("user", "and then?")]
    events = list(model.generate(turn2, settings))
    read = next(e for e in events if isinstance(e, Phase) and e.phase == "prefill")
    assert read.reused >= len(first[0].prompt_ids) - 1  # turn 1 came from the cache
    assert read.tokens == len(events[0].prompt_ids) - read.reused


def chains(model, settings):
    return [e for e in model.generate(CHAT, settings) if isinstance(e, TokenStep)]


def assert_chain_well_formed(step: TokenStep) -> None:
    counts = [s.candidates for s in step.sampler]
    masses = [s.mass for s in step.sampler]
    assert counts == sorted(counts, reverse=True), counts  # non-increasing
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(masses)), masses
    draw = step.sampler[-1]
    assert draw.stage == "draw" and draw.candidates == 1
    assert draw.mass == pytest.approx(step.prob, rel=1e-5)
    before = step.sampler[-2].candidates if len(step.sampler) > 1 else 1
    assert draw.rank is not None and 0 <= draw.rank < before  # the drawn token was a candidate
    assert step.sampling_prob > 0.0


def test_top_k_chain_agrees_with_the_settings(tiny_llama_dir):
    model = load_model(tiny_llama_dir)
    settings = GenerationSettings(temperature=1.0, top_k=5, seed=3, max_new_tokens=8)
    for step in chains(model, settings):
        assert [s.stage for s in step.sampler] == ["temperature", "top_k", "draw"]
        assert_chain_well_formed(step)
        temperature, top_k, _ = step.sampler
        assert temperature.candidates == 400 and temperature.mass == 1.0  # the tiny vocabulary
        assert top_k.candidates == 5
        kept = [a for a in step.top if a.sampling_prob > 0]  # top 10 alternatives hold the 5
        assert len(kept) == 5 and step.id in {a.id for a in kept}
        assert top_k.mass == pytest.approx(sum(a.prob for a in kept), rel=1e-5)
        assert step.sampler[-1].rank == [a.id for a in kept].index(step.id)


def test_full_chain_in_order_and_never_wider_than_top_k(tiny_llama_dir):
    model = load_model(tiny_llama_dir)
    settings = GenerationSettings(
        temperature=0.8,
        top_k=5,
        top_p=0.5,
        min_p=0.2,
        repetition_penalty=1.3,
        seed=11,
        max_new_tokens=8,
    )
    for step in chains(model, settings):
        stages = [s.stage for s in step.sampler]
        assert stages == ["repetition_penalty", "temperature", "top_k", "top_p", "min_p", "draw"]
        assert_chain_well_formed(step)
        assert all(s.candidates <= 5 for s in step.sampler[2:])


def test_greedy_chain_is_one_candidate_at_the_draw(tiny_llama_dir):
    model = load_model(tiny_llama_dir)
    for step in chains(model, GenerationSettings(temperature=0.0, max_new_tokens=6)):
        assert [(s.stage, s.candidates, s.rank) for s in step.sampler] == [("draw", 1, 0)]
        assert_chain_well_formed(step)
    penalized = GenerationSettings(temperature=0.0, repetition_penalty=1.5, max_new_tokens=6)
    for step in chains(model, penalized):
        assert [(s.stage, s.candidates) for s in step.sampler] == [
            ("repetition_penalty", 400),
            ("draw", 1),
        ]


def test_chain_counts_and_masses_on_a_known_row():
    logits = np.array([3.0, 2.0, 1.0, 0.0, -1.0, -np.inf], dtype=np.float32)  # (6,)
    model_probs = np.exp(logits - np.log(np.exp(logits[:5]).sum()))  # (6,) softmax
    settings = GenerationSettings(temperature=1.0, top_k=4, top_p=0.8, min_p=0.3, seed=0)
    drawn = Sampler(settings, 0).draw(logits, np.zeros(0, dtype=np.int64))
    logsumexp = float(np.log(np.exp(logits[:5].astype(np.float64)).sum()))
    chain = sampler_chain(drawn, logits, logsumexp)
    # top-4 keeps ids 0-3; top-p 0.8 of those: 0.644 + 0.237 = 0.881 -> ids 0, 1; min-p 0.3 keeps
    # 1 (0.237 / 0.644 = 0.37)
    assert [(s.stage, s.candidates) for s in chain] == [
        ("temperature", 5),
        ("top_k", 4),
        ("top_p", 2),
        ("min_p", 2),
        ("draw", 1),
    ]
    assert chain[1].mass == pytest.approx(model_probs[:4].sum())
    assert chain[2].mass == pytest.approx(model_probs[:2].sum())
    assert chain[-1].mass == pytest.approx(model_probs[drawn.token])
    assert drawn.token in (0, 1) and chain[-1].rank == drawn.token


@pytest.mark.slow
def test_default_model_chain_under_its_own_settings(default_model_dir):
    model = load_model(default_model_dir)
    settings = dataclasses.replace(model.default_settings(), max_new_tokens=8, seed=1)
    list(model.generate(CHAT, settings))  # warm-up
    model._stepper.forget()  # the timed reply runs its whole prompt
    events, wall_ms = timed_run(model, CHAT, settings)
    phases = [e for e in events if isinstance(e, Phase)]
    assert abs(sum(p.ms for p in phases) - wall_ms) <= 0.1 * wall_ms
    for step in (e for e in events if isinstance(e, TokenStep)):
        # generation_config.json: repetition penalty 1.1, temperature 0.2, top-p 0.9
        stages = [s.stage for s in step.sampler]
        assert stages == ["repetition_penalty", "temperature", "top_p", "draw"]
        assert step.sampler[0].candidates == 49152
        assert_chain_well_formed(step)
