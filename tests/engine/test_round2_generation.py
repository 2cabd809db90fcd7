"""Issue 17, generation: I5 (a stop string that never matches changes nothing, whatever ends the
reply), I7 (prompt plus reply never exceed the context), I8 (bad_words_ids, suppress_tokens and
begin_suppress_tokens honoured; an encoder-decoder model never generates its pad token).

Real ONNX Runtime on the tiny exported models of tests/fixtures; a model folder is changed by
editing a copy's generation_config.json (or, for I8's pad, one bias of a copy's graph).
"""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest

from desktop.cli import main
from desktop.engine.chat import load_model
from desktop.engine.errors import ModelFolderError
from desktop.engine.events import GenerationDone, GenerationSettings, Message, TokenStep
from desktop.engine.generate import LoopLimits, generate
from tests.engine.test_generation import run

CHAT = [Message("user", "Tell me a story")]


def greedy(n: int = 12, **changes) -> GenerationSettings:
    return GenerationSettings(temperature=0.0, max_new_tokens=n, **changes)


def edited_copy(folder, tmp_path, **generation):
    """A copy of `folder` whose generation_config.json has `generation` merged in."""
    copy = shutil.copytree(folder, tmp_path / "model")
    file = copy / "generation_config.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), **generation}))
    return copy


def first_new(ids: list[int]) -> int:
    """The first index > 0 whose id occurs nowhere before it."""
    return next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])


# ---- I5 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("end", ["eos_token_id", "stop_ids"])
def test_i5_held_text_survives_a_reply_that_ends_on_its_end_token(tiny_llama_dir, tmp_path, end):
    """`--stop ".XYZ"` turned "... Paris." into "... Paris" when the reply then ended on its
    end-of-turn token: here the reply's last text begins a stop string that never comes."""
    _, steps, _ = run(load_model(tiny_llama_dir, provider="cpu", threads=1), CHAT, greedy())
    ids = [s.id for s in steps]
    cut = first_new(ids)
    while not "".join(s.text for s in steps[:cut]) or ids[cut] in ids[:cut]:
        cut += 1  # some text before the end token, and an end token that did not come earlier
    expected = "".join(s.text for s in steps[:cut])
    last = next(s.text for s in reversed(steps[:cut]) if s.text)
    stop = last[-1] + "\u2603never"  # the reply's last character, then text it never has
    if end == "eos_token_id":
        model = load_model(edited_copy(tiny_llama_dir, tmp_path, eos_token_id=[0, ids[cut]]))
        settings = greedy(stop_strings=(stop,))
    else:
        model = load_model(tiny_llama_dir, provider="cpu", threads=1)
        settings = greedy(stop_strings=(stop,), stop_ids=(ids[cut],))
    _, streamed, done = run(model, CHAT, settings)
    assert done.finish_reason == "stop"
    assert [s.id for s in streamed] == ids[:cut]
    assert done.text == expected and expected.endswith(last[-1])
    assert "".join(s.text for s in streamed) == done.text


def test_i5_cli_json_and_history_keep_the_held_text(tiny_llama_dir, tmp_path, capsys):
    _, steps, _ = run(load_model(tiny_llama_dir, provider="cpu", threads=1), CHAT, greedy())
    ids = [s.id for s in steps]
    cut = max(first_new(ids), 2)
    folder = edited_copy(tiny_llama_dir, tmp_path, eos_token_id=[0, ids[cut]])
    expected = "".join(s.text for s in steps[:cut])
    stop = expected[-1] + "\u2603never"
    argv = ["chat", "--model", str(folder), "--temperature", "0", "--max-new-tokens", "12"]
    assert main([*argv, "--stop", stop, "--json", CHAT[0].content]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["finish_reason"] == "stop" and lines[-1]["text"] == expected
    assert "".join(line["text"] for line in lines if line["type"] == "token") == expected
    assert main(["history", "--json"]) == 0
    conv = json.loads(capsys.readouterr().out)[0]
    assert main(["export", str(conv["id"]), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["messages"][1]["content"] == expected


# ---- I7 ------------------------------------------------------------------------------------------
def loop(model, prompt_ids, context: int, n: int = 1000):
    """Run the generation loop directly with a context of `context` positions and no end token."""
    from desktop.engine.events import PromptInfo

    prompt = PromptInfo("", tuple(prompt_ids), 0, context)
    limits = LoopLimits(eos_ids=frozenset(), max_positions=context, provider="cpu")
    events = list(generate(model._stepper, model.tokenizer, prompt, greedy(n), limits))
    steps = [e for e in events if isinstance(e, TokenStep)]
    done = events[-1]
    assert isinstance(done, GenerationDone)
    return steps, done


def test_i7_a_200_token_context_after_a_12_token_prompt_gives_188_tokens(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    prompt_ids = list(range(10, 22))  # 12 tokens
    steps, done = loop(model, prompt_ids, context=200)
    assert len(steps) == 188 and done.finish_reason == "length"
    assert model._stepper.position == 199  # the last token is never fed back
    steps, done = loop(model, prompt_ids, context=200, n=188)  # the limit exactly: same length
    assert len(steps) == 188
    steps, _ = loop(model, prompt_ids, context=13)
    assert len(steps) == 1
    steps, done = loop(model, prompt_ids, context=12)  # the prompt fills the context
    assert steps == [] and done.finish_reason == "length" and done.completion_tokens == 0


@pytest.mark.parametrize("fixture", ["tiny_t5_dir", "tiny_bart_dir"])
def test_i7_encoder_decoder_decoder_tokens_never_exceed_the_context(fixture, request):
    """The decoder's own prompt (start token, BART's forced BOS) plus the reply fit the context."""
    model = load_model(request.getfixturevalue(fixture), provider="cpu", threads=1)
    prefix = len(model._stepper.decoder_prefix)
    steps, done = loop(model, model.tokenizer.encode("Hello world"), context=20)
    assert len(steps) == 20 - prefix and done.finish_reason == "length"
    assert model._stepper.position == 19


def test_i7_whole_context_through_the_chat_api(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    prompt, steps, done = run(model, CHAT, greedy(1000))
    assert done.finish_reason == "length"
    assert len(prompt.prompt_ids) + len(steps) == model.context_size


# ---- I8 ------------------------------------------------------------------------------------------
def test_i8_suppress_tokens_are_never_generated_and_records_keep_the_model_view(
    tiny_llama_dir, tmp_path
):
    _, steps, _ = run(load_model(tiny_llama_dir, provider="cpu", threads=1), CHAT, greedy())
    favourite = steps[0].id
    model = load_model(edited_copy(tiny_llama_dir, tmp_path, suppress_tokens=[favourite]))
    _, banned, _ = run(model, CHAT, greedy())
    assert favourite not in [s.id for s in banned]
    first = banned[0]
    assert first.id == steps[0].top[1].id  # greedy picks the model's second choice
    assert first.rank == 1 and first.top[0].id == favourite  # the model's own distribution
    assert first.top[0].sampling_prob == 0.0 and first.sampling_prob == 1.0
    assert first.top[0].logprob == pytest.approx(steps[0].logprob, abs=1e-6)


def test_i8_begin_suppress_tokens_only_at_the_first_token(tiny_llama_dir, tmp_path):
    _, steps, _ = run(load_model(tiny_llama_dir, provider="cpu", threads=1), CHAT, greedy())
    folder = edited_copy(tiny_llama_dir, tmp_path, begin_suppress_tokens=[steps[0].id])
    _, banned, _ = run(load_model(folder), CHAT, greedy(1))
    assert banned[0].id == steps[0].top[1].id and banned[0].rank == 1


def test_i8_multi_token_bad_words_ban_the_last_id_after_the_rest(tiny_llama_dir, tmp_path):
    _, steps, _ = run(load_model(tiny_llama_dir, provider="cpu", threads=1), CHAT, greedy())
    a, b = steps[0].id, steps[1].id
    folder = edited_copy(tiny_llama_dir, tmp_path, bad_words_ids=[[a, b]])
    _, banned, _ = run(load_model(folder), CHAT, greedy())
    ids = [s.id for s in banned]
    assert ids[0] == a and ids[1] == steps[1].top[1].id
    assert all((x, y) != (a, b) for x, y in itertools.pairwise(ids))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("suppress_tokens", 5),
        ("suppress_tokens", ["a"]),
        ("bad_words_ids", [5]),
        ("bad_words_ids", {"x": 1}),
        ("begin_suppress_tokens", [[1]]),
    ],
)
def test_i8_a_ban_list_of_the_wrong_shape_names_its_file(tiny_llama_dir, tmp_path, key, value):
    folder = edited_copy(tiny_llama_dir, tmp_path, **{key: value})
    with pytest.raises(ModelFolderError, match=rf"generation_config\.json: .*{key}"):
        load_model(folder)


def test_i8_encoder_decoder_never_generates_its_pad_token(tiny_marian_dir, tmp_path):
    """A Marian-like model whose pad scores highest answered "" with pad tokens until the limit:
    its final_logits_bias is raised at pad by 50 in a copy of the graph."""
    import onnx
    from onnx import numpy_helper

    folder = shutil.copytree(tiny_marian_dir, tmp_path / "marian")
    graph_file = folder / "onnx" / "decoder_model_merged.onnx"
    graph = onnx.load(graph_file)
    pad = json.loads((folder / "generation_config.json").read_text())["pad_token_id"]
    (bias,) = [t for t in graph.graph.initializer if t.name.startswith("final_logits_bias")]
    values = numpy_helper.to_array(bias).copy()  # (1, vocab)
    values[0, pad] += 50.0
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    onnx.save(graph, graph_file)

    model = load_model(folder, provider="cpu", threads=1)
    assert pad in model.manifest.bans.always
    _, steps, done = run(model, [Message("user", "Hello world")], greedy(8))
    assert steps and pad not in [s.id for s in steps]
    assert all(s.top[0].id == pad and s.rank == 1 for s in steps)  # the model's own view
    assert done.text == "".join(s.text for s in steps)


def test_i8_pad_is_not_banned_for_decoder_only_models(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    assert model.manifest.bans.always == ()
    assert not model.manifest.bans
    np.testing.assert_array_equal(model.manifest.bans.apply(np.zeros(3, np.float32), [], 0), 0)


@pytest.mark.slow
def test_i5_paris_keeps_its_full_stop_on_the_default_model(default_model_dir):
    """The issue's own case: `--stop ".XYZ"` turned "... Paris." into "... Paris"."""
    model = load_model(default_model_dir, provider="cpu", threads=2)
    chat = [Message("user", "What is the capital of France?")]
    plain = greedy(24, repetition_penalty=1.0)
    *_, done = model.generate(chat, plain)
    *_, held = model.generate(chat, greedy(24, repetition_penalty=1.0, stop_strings=(".XYZ",)))
    assert done.finish_reason == "stop" and "Paris" in done.text and done.text.endswith(".")
    assert held.text == done.text and held.finish_reason == "stop"
