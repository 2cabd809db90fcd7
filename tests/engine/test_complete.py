"""`ChatModel.complete`: a raw text continued as is, through the same loop as a chat reply."""

from __future__ import annotations

import pytest

from desktop.engine.chat import load_model
from desktop.engine.errors import EmptyMessageError, PromptTooLongError
from desktop.engine.events import GenerationDone, GenerationSettings, Message, PromptInfo, TokenStep

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=10, top_logprobs=3)


@pytest.fixture(scope="module")
def model(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir, provider="cpu", threads=1)
    yield loaded
    loaded.close()


def test_the_rendered_chat_prompt_as_raw_text_gives_the_chat_reply(model):
    messages = [Message("user", "What is the capital of France?")]
    chat = list(model.generate(messages, GREEDY))
    raw = list(model.complete(chat[0].prompt_text, GREEDY))
    assert isinstance(raw[0], PromptInfo) and isinstance(raw[-1], GenerationDone)
    # the template's `<|im_start|>` written in the text is the special token, not its characters
    assert raw[0].prompt_ids == chat[0].prompt_ids and raw[0].prompt_ids[0] == 1
    assert [s.id for s in raw if isinstance(s, TokenStep)] == [
        s.id for s in chat if isinstance(s, TokenStep)
    ]
    assert raw[-1].text == chat[-1].text and raw[-1].prompt_tokens == len(raw[0].prompt_ids)


def test_a_plain_text_is_read_as_is_with_no_template(model):
    text = "The quick brown fox"
    prompt = next(iter(model.complete(text, GREEDY)))
    assert prompt.prompt_ids == tuple(model.tokenizer.encode(text, add_special_tokens=True))
    assert prompt.prompt_text == text and prompt.dropped_messages == 0


def test_an_empty_or_too_long_prompt_is_refused_before_anything_runs(model):
    with pytest.raises(EmptyMessageError):
        next(iter(model.complete("", GREEDY)))
    with pytest.raises(PromptTooLongError, match="at most 256"):
        next(iter(model.complete("fox " * 400, GREEDY)))
    done = list(model.complete("fox", GREEDY))[-1]  # the model is still usable
    assert done.finish_reason in ("stop", "length") and done.completion_tokens > 0
