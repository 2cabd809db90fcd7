"""Generation with a forced reply prefix (a branch from a token) on tiny models (real ONNX Runtime).

The records of the forced tokens are the model's own, recomputed in the loop: they must equal the
original reply's records (ids, ranks and top ids exactly, probabilities within 1e-4), the picked
token's logprob must equal what the original step listed for it as an alternative, and reusing
the KV cache must give what a fresh model gives.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from desktop.engine.chat import load_model
from desktop.engine.errors import TokenIdError
from desktop.engine.events import GenerationDone, GenerationSettings, Message, PromptInfo, TokenStep

DECODERS = ["tiny_llama_dir", "tiny_gpt2_dir", "tiny_qwen2_dir", "tiny_fused_dir"]
SAMPLED = GenerationSettings(
    temperature=0.9, top_k=40, repetition_penalty=1.1, seed=7, max_new_tokens=10, top_logprobs=5
)
CHAT = [Message("user", "What is the capital of France?")]


def run(model, settings=SAMPLED, forced_ids=(), chat=CHAT):
    events = list(model.generate(chat, settings, forced_ids=forced_ids))
    assert isinstance(events[0], PromptInfo) and isinstance(events[-1], GenerationDone)
    return [e for e in events if isinstance(e, TokenStep)], events[-1]


def alternative_of(step: TokenStep):
    """The most likely alternative that is not the token the step chose."""
    return next(alt for alt in step.top if alt.id != step.id)


def assert_same_record(got: TokenStep, want: TokenStep) -> None:
    assert (got.index, got.id, got.token, got.bytes, got.rank) == (
        want.index,
        want.id,
        want.token,
        want.bytes,
        want.rank,
    )
    assert [a.id for a in got.top] == [a.id for a in want.top]
    for a, b in [(got, want), *zip(got.top, want.top, strict=True)]:
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert a.prob == pytest.approx(b.prob, abs=1e-4)
        assert a.sampling_prob == pytest.approx(b.sampling_prob, abs=1e-4)
    assert got.entropy == pytest.approx(want.entropy, abs=1e-4)


def branch(original: list[TokenStep], index: int) -> tuple[tuple[int, ...], object]:
    alt = alternative_of(original[index])
    return (*(s.id for s in original[:index]), alt.id), alt


@pytest.mark.parametrize("fixture", [*DECODERS, "tiny_t5_dir"])
def test_a_branch_keeps_the_original_records_and_scores_the_picked_token(fixture, request):
    model = load_model(request.getfixturevalue(fixture), provider="cpu", threads=1)
    original, _ = run(model)
    assert len(original) >= 4, "the tiny model's reply is too short to branch"
    index = 3
    forced, alt = branch(original, index)
    steps, done = run(model, forced_ids=forced)
    for got, want in zip(steps[:index], original[:index], strict=True):
        assert got.forced and not got.picked
        assert_same_record(got, want)
        assert got.text == want.text
    picked = steps[index]
    assert picked.picked and picked.forced and picked.id == alt.id
    assert picked.logprob == pytest.approx(alt.logprob, abs=1e-4)
    assert picked.prob == pytest.approx(alt.prob, abs=1e-4)
    assert picked.rank == [a.id for a in original[index].top].index(alt.id)
    assert [a.id for a in picked.top] == [a.id for a in original[index].top]
    assert not any(s.forced or s.picked for s in steps[index + 1 :])
    assert done.completion_tokens == len(steps) <= index + 1 + SAMPLED.max_new_tokens
    assert done.text == "".join(s.text for s in steps)


@pytest.mark.parametrize("fixture", DECODERS)
def test_the_branch_reuses_the_cache_and_equals_a_fresh_model(fixture, request):
    """After the original reply the cache holds its prompt and reply: the branch reuses the
    original's records of the kept tokens and runs only the last kept token (for the picked
    token's distribution), and every record equals a fresh model's branch, which recomputes them
    (greedy, so the continuation after the picked token must be the same tokens)."""
    folder = request.getfixturevalue(fixture)
    warm = load_model(folder, provider="cpu", threads=1)
    fresh = load_model(folder, provider="cpu", threads=1)
    greedy = GenerationSettings(temperature=0.0, max_new_tokens=12, top_logprobs=5)
    original, _ = run(warm, greedy)
    prompt_ids = warm.render_prompt(CHAT).prompt_ids
    forced, _ = branch(original, 5)
    steps, _ = run(warm, greedy, forced)
    assert warm._stepper.reused == len(prompt_ids) + len(forced) - 2  # all but the last kept
    assert [s.top for s in steps[:5]] == [s.top for s in original[:5]]  # the original's, as is
    again, _ = run(fresh, greedy, forced)
    assert fresh._stepper.reused == 0
    assert [s.id for s in steps] == [s.id for s in again]
    for got, want in zip(steps, again, strict=True):
        assert_same_record(got, want)
        assert (got.forced, got.picked) == (want.forced, want.picked)


def test_a_branch_of_an_earlier_reply_recomputes_the_kept_records(tiny_llama_dir):
    """Once another reply was written, the original's records are not the model's last: the
    branch recomputes them through the cache, and they still equal the original's."""
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    greedy = GenerationSettings(temperature=0.0, max_new_tokens=12, top_logprobs=5)
    original, _ = run(model, greedy)
    run(model, greedy, chat=[Message("user", "Something else entirely.")])
    forced, alt = branch(original, 5)
    steps, _ = run(model, greedy, forced)
    for got, want in zip(steps[:5], original[:5], strict=True):
        assert_same_record(got, want)
        assert got.forced and not got.picked
    assert steps[5].picked and steps[5].logprob == pytest.approx(alt.logprob, abs=1e-4)


@pytest.mark.parametrize("fixture", DECODERS)
def test_prefill_rows_equal_a_prefill_then_one_step_per_token(fixture, request):
    """The logits of every row of one run equal those of single steps, with and without a kept
    prefix (the fused graph too: its logits cover every position of a run)."""
    model = load_model(request.getfixturevalue(fixture), provider="cpu", threads=1)
    stepper = model._stepper
    prompt = list(model.render_prompt(CHAT).prompt_ids)
    extra = [5, 17, 42, 9]
    want = [stepper.prefill(prompt)] + [stepper.step(t) for t in extra]
    rows = stepper.prefill_rows([*prompt, *extra], len(extra) + 1)  # cache reused
    assert stepper.reused == len(prompt) - 1
    np.testing.assert_allclose(rows, np.stack(want), rtol=1e-4, atol=1e-5)
    stepper.forget()
    rows = stepper.prefill_rows([*prompt, *extra], len(extra) + 1, chunk=3)  # rows over chunks
    np.testing.assert_allclose(rows, np.stack(want), rtol=1e-4, atol=1e-5)
    assert stepper.position == len(prompt) + len(extra)


def test_a_picked_end_token_is_recorded_and_ends_the_reply(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    original, _ = run(model)
    eos = min(model.manifest.eos_ids)
    steps, done = run(model, forced_ids=(original[0].id, original[1].id, eos))
    assert [s.id for s in steps] == [original[0].id, original[1].id, eos]
    assert steps[-1].picked and steps[-1].text == ""
    assert done.finish_reason == "stop"
    assert done.text == original[0].text + original[1].text


def test_max_new_tokens_counts_the_tokens_after_the_forced_prefix(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=3, stop_ids=())
    original, _ = run(model, GenerationSettings(temperature=0.0, max_new_tokens=8))
    forced, _ = branch(original, 5)
    steps, done = run(model, settings, forced)
    sampled = [s for s in steps if not s.forced]
    assert len(steps) == len(forced) + len(sampled) and len(sampled) <= 3
    if done.finish_reason == "length":
        assert len(sampled) == 3
    assert math.isfinite(done.ttft_ms)


def test_a_token_id_outside_the_vocabulary_is_refused_before_anything_runs(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    vocab = model.tokenizer.vocab_size
    with pytest.raises(TokenIdError, match=f"0..{vocab - 1}"):
        next(iter(model.generate(CHAT, SAMPLED, forced_ids=(1, vocab))))
    with pytest.raises(TokenIdError):
        next(iter(model.generate(CHAT, SAMPLED, forced_ids=(-1,))))


@pytest.mark.slow
def test_a_branch_on_the_default_model_keeps_the_records_and_the_cache(default_model_dir):
    """The default model (fused graph, shared KV buffers, rescored int8 lm_head): after a reply,
    a branch from its token 5 keeps all but the last kept token in the cache, and its kept
    tokens and picked token score as the original reply listed them (within 1e-4)."""
    model = load_model(default_model_dir, provider="cpu", threads=2)
    chat = [Message("user", "Tell me about the history of Paris in a few sentences.")]
    greedy = GenerationSettings(temperature=0.0, max_new_tokens=24, top_logprobs=10)
    original, _ = run(model, greedy, chat=chat)
    forced, alt = branch(original, 5)
    steps, done = run(model, dataclasses.replace(greedy, max_new_tokens=4), forced, chat=chat)
    prompt_ids = model.render_prompt(chat).prompt_ids
    assert model._stepper.reused == len(prompt_ids) + len(forced) - 2  # all but the last kept
    for got, want in zip(steps[:5], original[:5], strict=True):
        assert_same_record(got, want)
    assert steps[5].picked and steps[5].logprob == pytest.approx(alt.logprob, abs=1e-4)
    assert done.completion_tokens == 6 + 4 or done.finish_reason == "stop"
