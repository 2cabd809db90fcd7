"""Sessions, KV cache, steppers and the generation loop on tiny exported models (real ONNX Runtime).

Golden references: each tiny export's report holds PyTorch's greedy ids for a fixed input
(model_export's self-check); the engine must reproduce them, and its cached loop must equal a
full recompute without cache (nanochat's check).
"""

from __future__ import annotations

import json
import math
import shutil
import threading

import numpy as np
import pytest

from desktop.engine.chat import load_model
from desktop.engine.errors import EmptyMessageError, EngineError, PromptTooLongError
from desktop.engine.events import GenerationDone, GenerationSettings, Message, PromptInfo, TokenStep

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=12, top_logprobs=5)
EXPORTED_DECODERS = ["tiny_llama_dir", "tiny_gpt2_dir", "tiny_qwen2_dir"]  # optimum, + HF source
DECODERS = [*EXPORTED_DECODERS, "tiny_fused_dir"]  # + the fused graph on shared KV buffers
SEQ2SEQ = ["tiny_t5_dir", "tiny_bart_dir", "tiny_marian_dir"]


def run(model, messages, settings=GREEDY, cancel=None):
    events = list(model.generate(messages, settings, cancel))
    assert isinstance(events[0], PromptInfo)
    assert isinstance(events[-1], GenerationDone)
    assert sum(isinstance(e, GenerationDone) for e in events) == 1
    steps = [e for e in events if isinstance(e, TokenStep)]
    return events[0], steps, events[-1]


def greedy_ids(stepper, prompt_ids, n, recompute=False):
    """n greedy ids: through the KV cache, or by a fresh prefill of everything each step."""
    out: list[int] = []
    logits = stepper.prefill(prompt_ids)
    for _ in range(n):
        out.append(int(np.argmax(logits)))
        logits = full_recompute(stepper, prompt_ids, out) if recompute else stepper.step(out[-1])
    return out


def full_recompute(stepper, prompt_ids, reply):
    if hasattr(stepper, "decoder_prefix"):  # encoder-decoder: whole decoder input, no cache
        saved = stepper.decoder_prefix
        stepper.decoder_prefix = [*saved, *reply]
        try:
            return stepper.prefill(prompt_ids)
        finally:
            stepper.decoder_prefix = saved
    stepper.forget()  # a recompute: nothing kept from the cache
    return stepper.prefill([*prompt_ids, *reply])


@pytest.mark.parametrize("fixture", DECODERS + SEQ2SEQ)
def test_cached_greedy_equals_full_recompute(fixture, request):
    model = load_model(request.getfixturevalue(fixture), provider="cpu", threads=1)
    prompt = model.render_prompt([Message("user", "What is the capital of France?")])
    ids = list(prompt.prompt_ids)
    cached = greedy_ids(model._stepper, ids, 16)
    assert cached == greedy_ids(model._stepper, ids, 16, recompute=True)


@pytest.mark.parametrize("fixture", EXPORTED_DECODERS)
def test_decoder_greedy_matches_pytorch(fixture, request):
    """D2: our cached loop's greedy ids equal transformers' greedy generate on the source model."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    folder = request.getfixturevalue(fixture)
    model = load_model(folder, provider="cpu", threads=1)
    ids = list(model.render_prompt([Message("user", "What is the capital of France?")]).prompt_ids)
    reference = AutoModelForCausalLM.from_pretrained(str(folder.with_name(folder.name + "-hf")))
    with torch.no_grad():
        out = reference.generate(
            torch.tensor([ids]), max_new_tokens=16, do_sample=False, eos_token_id=None,
            pad_token_id=0, attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        )  # fmt: skip
    assert greedy_ids(model._stepper, ids, 16) == out[0, len(ids) :].tolist()


@pytest.mark.parametrize("fixture", SEQ2SEQ)
def test_seq2seq_greedy_matches_pytorch(fixture, request):
    folder = request.getfixturevalue(fixture)
    check = json.loads((folder / "export_report.json").read_text())["check"]
    expected = check["greedy"]["pytorch"]
    model = load_model(folder, provider="cpu", threads=1)
    ids = model.tokenizer.encode_prompt(check["source_text"], rendered_by_template=False)
    stepper = model._stepper
    forced = 1 if model.manifest.forced_bos_id is not None else 0
    got = greedy_ids(stepper, ids, len(expected) - forced)
    assert got == expected[forced:]


@pytest.mark.parametrize("fixture", DECODERS + SEQ2SEQ)
def test_token_records_are_consistent(fixture, request):
    model = load_model(request.getfixturevalue(fixture), provider="cpu", threads=1)
    prompt, steps, done = run(model, [Message("user", "Hello world")])
    assert done.finish_reason in ("length", "stop")
    assert done.completion_tokens == len(steps) and done.prompt_tokens == len(prompt.prompt_ids)
    assert "".join(s.text for s in steps) == done.text
    assert "\ufffd" not in done.text[:-1]  # only a reply cut inside a character ends with it (I3)
    for index, step in enumerate(steps):
        assert step.index == index and step.rank == 0
        assert step.top[0].id == step.id and step.sampling_prob == 1.0
        assert math.isclose(step.top[0].logprob, step.logprob, rel_tol=1e-6)
        probs = [a.prob for a in step.top]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
        assert all(math.isfinite(a.logprob) for a in step.top) and len(step.top) == 5
        assert 0.0 <= step.entropy <= math.log(model.tokenizer.vocab_size) + 1e-4
        assert step.step_ms > 0


def test_seed_reproduces_a_sampled_reply(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    chat = [Message("user", "Tell me a story")]
    settings = GenerationSettings(temperature=1.0, top_k=50, max_new_tokens=16, seed=1234)
    first = [s.id for s in run(model, chat, settings)[1]]
    assert first == [s.id for s in run(model, chat, settings)[1]]
    unseeded = GenerationSettings(temperature=1.0, max_new_tokens=16)
    _, steps, done = run(model, chat, unseeded)
    replay = GenerationSettings(temperature=1.0, max_new_tokens=16, seed=done.seed)
    assert [s.id for s in run(model, chat, replay)[1]] == [s.id for s in steps]


def test_c1_c2_stop_on_any_end_token_and_never_show_it(tiny_llama_dir, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_llama_dir, tmp_path / "model")
    model = load_model(folder, provider="cpu", threads=1)
    _, steps, _ = run(model, [Message("user", "Tell me a story")])
    ids = [s.id for s in steps]
    cut = next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])
    third = ids[cut]
    config = json.loads((folder / "generation_config.json").read_text())
    config["eos_token_id"] = [0, third]
    (folder / "generation_config.json").write_text(json.dumps(config))
    model = load_model(folder, provider="cpu", threads=1)
    assert {0, 2, third} <= model.manifest.eos_ids  # union with config.json and the tokenizer
    _, stopped, done = run(model, [Message("user", "Tell me a story")])
    assert done.finish_reason == "stop"
    assert [s.id for s in stopped] == ids[:cut]
    assert third not in [s.id for s in stopped]


def test_c3_user_stop_ids_and_strings(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    chat = [Message("user", "Tell me a story")]
    _, steps, done = run(model, chat)
    ids = [s.id for s in steps]
    cut = next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])
    by_id = GenerationSettings(temperature=0.0, max_new_tokens=12, stop_ids=(ids[cut],))
    _, stopped, end = run(model, chat, by_id)
    assert end.finish_reason == "stop" and len(stopped) == cut
    text = done.text
    offsets = np.cumsum([0] + [len(s.text) for s in steps])
    # a stop string: the first letters-only piece after the start that occurs nowhere earlier
    stop = next(
        s.text
        for k, s in enumerate(steps)
        if k > 0 and s.text.isalpha() and text.find(s.text) == offsets[k]
    )
    by_text = GenerationSettings(temperature=0.0, max_new_tokens=12, stop_strings=(stop,))
    _, streamed, end = run(model, chat, by_text)
    assert end.finish_reason == "stop"
    assert end.text == text[: text.index(stop)]
    assert "".join(s.text for s in streamed) == end.text


def test_text_held_for_a_stop_string_that_never_comes_reaches_a_token(tiny_llama_dir):
    """A reply that ends by length while its last text could still begin a stop string: that
    text is part of the reply, and the records' texts still join to the reply."""
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    chat = [Message("user", "Tell me a story")]
    n = 6
    _, steps, done = run(model, chat, GenerationSettings(temperature=0.0, max_new_tokens=n))
    last = next(s.text for s in reversed(steps) if s.text)
    stop = last + "\u2603never"  # begins with the reply's last text, then text it never has
    held = GenerationSettings(temperature=0.0, max_new_tokens=n, stop_strings=(stop,))
    _, streamed, end = run(model, chat, held)
    assert end.finish_reason == "length" and end.text == done.text
    assert [s.id for s in streamed] == [s.id for s in steps]
    assert "".join(s.text for s in streamed) == end.text


def test_cancel_between_steps(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    cancel = threading.Event()
    events = []
    for event in model.generate([Message("user", "Hello")], GREEDY, cancel):
        events.append(event)
        if isinstance(event, TokenStep) and event.index == 2:
            cancel.set()
    assert isinstance(events[-1], GenerationDone) and events[-1].finish_reason == "cancelled"
    assert sum(isinstance(e, TokenStep) for e in events) == 3


class CancelAfterChecks(threading.Event):
    """A real Event that sets itself on its `n`-th check (a Stop pressed mid-prefill, without a
    race against a fast tiny model)."""

    def __init__(self, n: int):
        super().__init__()
        self.checks = 0
        self.n = n

    def is_set(self) -> bool:
        self.checks += 1
        if self.checks >= self.n:
            self.set()
        return super().is_set()


@pytest.mark.parametrize("fixture", DECODERS)
def test_chunked_prefill_equals_one_run(fixture, request):
    model = load_model(request.getfixturevalue(fixture), provider="cpu", threads=1)
    ids = list(
        model.render_prompt([Message("user", "The quick brown fox jumps over it")]).prompt_ids
    )
    assert len(ids) > 7
    whole = model._stepper.prefill(ids, chunk=len(ids))
    for chunk in (1, 3, 7):
        model._stepper.forget()  # the whole prompt again, not the cached prefix
        chunked = model._stepper.prefill(ids, chunk=chunk)
        assert model._stepper.position == len(ids)
        np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-5)
        assert int(np.argmax(chunked)) == int(np.argmax(whole))


def test_cancel_during_prefill_stops_within_one_chunk(tiny_llama_dir, monkeypatch):
    from desktop.engine import steppers

    monkeypatch.setattr(steppers, "PREFILL_CHUNK", 4)
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    messages = [Message("user", "one two three four five six seven eight nine ten")]
    assert len(model.render_prompt(messages).prompt_ids) > 12
    cancel = CancelAfterChecks(3)  # set at the third check: after two chunks of prefill ran
    prompt, steps, done = run(model, messages, cancel=cancel)
    assert done.finish_reason == "cancelled" and done.completion_tokens == 0 and not steps
    assert done.prompt_tokens == len(prompt.prompt_ids) and done.text == ""
    assert model._stepper.position == 8  # two chunks of 4 reached the KV cache, no more


def test_cancel_before_prefill(tiny_t5_dir):
    model = load_model(tiny_t5_dir, provider="cpu", threads=1)
    cancel = threading.Event()
    cancel.set()
    _, steps, done = run(model, [Message("user", "Hello")], cancel=cancel)
    assert done.finish_reason == "cancelled" and done.completion_tokens == 0 and not steps


def test_f1_long_conversation_drops_oldest_turns(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    assert model.context_size == 256
    long = "The quick brown fox jumps over the lazy dog. " * 2
    chat = [Message("system", "Be brief.")]
    for i in range(8):
        chat += [Message("user", f"{i} {long}"), Message("assistant", f"answer {i} {long}")]
    chat.append(Message("user", "Last question?"))
    settings = GenerationSettings(temperature=0.0, max_new_tokens=64)
    prompt, _, done = run(model, chat, settings)
    assert 0 < prompt.dropped_messages < 16 and done.dropped_messages == prompt.dropped_messages
    assert prompt.dropped_messages % 2 == 0  # whole user/assistant exchanges
    assert "Be brief." in prompt.prompt_text and "Last question?" in prompt.prompt_text
    assert "0 The quick" not in prompt.prompt_text and "7 The quick" in prompt.prompt_text
    assert len(prompt.prompt_ids) <= model.context_size - 64


def test_f1_no_position_reaches_the_context_size(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=1000)
    prompt, steps, done = run(model, [Message("user", "Tell me a story")], settings)
    assert done.finish_reason == "length"
    # prompt + reply fill the context exactly (I7); every token but the last was fed back
    assert len(prompt.prompt_ids) + len(steps) == model.context_size
    assert model._stepper.position == model.context_size - 1


def test_single_message_too_long_and_empty_message(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    with pytest.raises(PromptTooLongError, match="at most 256"):
        model.render_prompt([Message("user", "fox " * 400)])
    with pytest.raises(EmptyMessageError):
        next(model.generate([Message("user", "   ")], GREEDY))


def test_d3_unavailable_gpu_provider_falls_back_with_reason(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cuda", threads=1)
    assert model.provider.requested == "cuda"
    assert model.provider.actual == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider" in model.provider.fallback_reason
    assert "running on CPU" in model.provider.fallback_reason
    *_, done = run(model, [Message("user", "Hello")])
    assert done.provider == "CPUExecutionProvider" and done.completion_tokens > 0


def test_unknown_provider_is_a_clear_error(tiny_llama_dir):
    from desktop.engine.errors import ProviderError

    with pytest.raises(ProviderError, match="auto, cpu, cuda, dml or coreml"):
        load_model(tiny_llama_dir, provider="tpu")


def test_d6_threads_are_explicit_and_shared(tiny_t5_dir):
    model = load_model(tiny_t5_dir, provider="cpu", threads=2)
    for graph in model._graphs.values():
        options = graph.session.get_session_options()
        assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert model.kind == "encoder-decoder"


def test_default_settings_follow_generation_config(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    assert model.default_settings().temperature == 0.0  # do_sample: false


def test_trained_t5_reverses_words_through_the_engine(trained_t5_dir, trained_t5_examples):
    """A real encoder-decoder task end to end: message in, reply text out (greedy)."""
    model = load_model(trained_t5_dir, provider="cpu", threads=1)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=24, top_logprobs=3)
    examples = trained_t5_examples[:60]
    right = 0
    for word, answer in examples:
        *_, done = model.generate([Message("user", word)], settings)
        assert done.finish_reason == "stop"
        right += done.text == answer
    assert right / len(examples) >= 0.9


@pytest.mark.parametrize(
    ("config", "temperature", "top_p", "top_k"),
    [
        ({"do_sample": False, "temperature": 0.2, "top_p": 0.9}, 0.0, 0.9, 0),
        ({"do_sample": True, "temperature": 0.2, "top_p": 0.9}, 0.2, 0.9, 0),
        ({"temperature": 0.6, "top_k": 40}, 0.6, 1.0, 40),  # do_sample missing: model's values
        ({}, GenerationSettings().temperature, 1.0, 0),  # nothing: our defaults
    ],
)
def test_default_settings_read_do_sample(
    tiny_llama_dir, tmp_path, config, temperature, top_p, top_k
):
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, folder)
    (folder / "generation_config.json").write_text(json.dumps(config), encoding="utf-8")
    settings = load_model(folder, provider="cpu", threads=1).default_settings()
    assert (settings.temperature, settings.top_p, settings.top_k) == (temperature, top_p, top_k)


@pytest.mark.parametrize("fixture", DECODERS)
def test_a_follow_up_prefills_only_what_the_cache_lacks(fixture, request):
    """Prefix caching: turn 2's prompt starts with turn 1's prompt and (most of) its reply, so
    only the rest runs; a Regenerate reruns only the last prompt token; an edit keeps the common
    prefix. Every time, the logits and the reply equal those of a fresh run."""
    model = load_model(request.getfixturevalue(fixture), provider="cpu", threads=1)
    fresh = load_model(request.getfixturevalue(fixture), provider="cpu", threads=1)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=6)
    chat = [Message("user", "What is the capital of France?")]
    first = model.render_prompt(chat)
    *_, done = model.generate(chat, settings)
    stepper = model._stepper
    assert stepper.reused == 0
    chat += [Message("assistant", done.text), Message("user", "And of Spain?")]
    second = list(model.render_prompt(chat).prompt_ids)
    for prompt in (
        second,  # a follow-up
        second,  # the same prompt again (Regenerate)
        [*second[:-3], 5, 6, 7],  # an edited ending
        list(first.prompt_ids),  # back to a shorter conversation
    ):
        before = list(stepper._cached)
        logits = stepper.prefill(prompt)
        shared = next(
            (i for i, (a, b) in enumerate(zip(before, prompt, strict=False)) if a != b),
            min(len(before), len(prompt)),
        )
        assert stepper.reused == min(shared, len(prompt) - 1)
        assert stepper.position == len(prompt)
        if prompt is second and model.template is not None:
            assert stepper.reused >= len(first.prompt_ids)  # turn 1 was not read again
        fresh._stepper.forget()
        np.testing.assert_allclose(logits, fresh._stepper.prefill(prompt), rtol=1e-4, atol=1e-5)
    *_, again = model.generate(chat, settings)
    *_, alone = fresh.generate(chat, settings)
    assert again.text == alone.text


def test_a_failed_run_empties_the_cache(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    stepper = model._stepper
    ids = list(model.render_prompt([Message("user", "hello there")]).prompt_ids)
    stepper.prefill(ids)
    with pytest.raises(EngineError):
        stepper.step(10**9)  # an id outside the vocabulary: ONNX Runtime's Gather fails
    assert stepper.position == 0 and stepper._cached == []
    stepper.prefill(ids)
    assert stepper.reused == 0 and stepper.position == len(ids)


def test_the_fused_graph_runs_on_shared_past_present_buffers(tiny_fused_dir, monkeypatch):
    """GroupQueryAttention updates one buffer per layer in place: the cache grows by doubling,
    and every logit equals the copying cache's (the same graph without the metadata)."""
    from desktop.engine.kv_cache import KVCache, SharedKVCache

    monkeypatch.setattr(SharedKVCache, "MIN_CAPACITY", 4)  # small: this short run grows it
    shared = load_model(tiny_fused_dir, provider="cpu", threads=1)
    copying = load_model(tiny_fused_dir, provider="cpu", threads=1)
    stepper = copying._stepper
    stepper.cache = KVCache(stepper.spec.slots, copying.manifest.config)
    assert isinstance(shared._stepper.cache, SharedKVCache)
    ids = list(shared.render_prompt([Message("user", "hello there")]).prompt_ids)
    a, b = shared._stepper.prefill(ids, chunk=3), stepper.prefill(ids, chunk=3)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for _ in range(20):  # past the first capacities: 4, 8, 16, 32
        token = int(np.argmax(a))
        a, b = shared._stepper.step(token), stepper.step(token)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    cache = shared._stepper.cache
    assert cache.length == len(ids) + 20 and cache.capacity >= cache.length
    assert cache.capacity & (cache.capacity - 1) == 0  # doubled from 4
