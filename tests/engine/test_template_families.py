"""Case I4: chat templates of 13 model families (tests/engine/templates/, sources in SOURCES.md)
render exactly as transformers' `apply_chat_template(..., tokenize=False,
add_generation_prompt=True)` renders them, with and without a system message; a model without a
template reads the last user message as it is. transformers is a test dependency only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jinja2.exceptions import TemplateError
from transformers import PreTrainedTokenizerFast

from desktop.engine.chat_template import ChatTemplate, find_template, fold_system_prompt
from desktop.engine.errors import ChatTemplateError
from desktop.engine.events import Message
from desktop.engine.prompt import build_prompt

TEMPLATES = Path(__file__).parent / "templates"
# Each family's special tokens as its tokenizer_config.json names them.
SPECIALS = {
    "HuggingFaceTB-SmolLM2-135M-Instruct": ("<|im_start|>", "<|im_end|>"),
    "HuggingFaceTB-SmolLM3-3B": ("<|begin_of_text|>", "<|im_end|>"),
    "meta-llama-Llama-3.2-3B-Instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "Qwen-Qwen2.5-7B-Instruct": (None, "<|im_end|>"),
    "Qwen2.5-assistant-mask": (None, "<|im_end|>"),
    "Qwen-Qwen3-0.6B": (None, "<|im_end|>"),
    "mistralai-Mistral-Nemo-Instruct-2407": ("<s>", "</s>"),
    "google-gemma-2-2b-it": ("<bos>", "<eos>"),
    "google-gemma-3-270m-it": ("<bos>", "<eos>"),
    "microsoft-Phi-3.5-mini-instruct": ("<s>", "<|endoftext|>"),
    "llama-cpp-microsoft-Phi-4-mini-instruct": ("<|endoftext|>", "<|endoftext|>"),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": (
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
    ),
    "ibm-granite-granite-3.3-2B-Instruct": ("<|end_of_text|>", "<|end_of_text|>"),
    "allenai-OLMo-2-1124-7B-Instruct": ("<|endoftext|>", "<|endoftext|>"),
}
# llama.cpp's own edit of Phi-4-mini's template (for its minja engine) fails in transformers too,
# when a system message or no tools: both raise, ours as a ChatTemplateError.
BROKEN_IN_TRANSFORMERS = {"llama-cpp-microsoft-Phi-4-mini-instruct"}
CHATS = {
    "one turn": [Message("user", "Hello! What is 2+2?")],
    "history": [
        Message("user", "Hello! What is 2+2?"),
        Message("assistant", "  4.\n"),
        Message("user", 'And 3+3? Answer in JSON: {"a": 1} é'),
    ],
    "reasoning in history": [
        Message("user", "Think first."),
        Message("assistant", "<think>\nhmm\n</think>\n\nDone."),
        Message("user", "Again."),
    ],
}
SYSTEM = Message("system", "You are terse. /no_think")


def test_the_fixtures_cover_ten_families_and_more():
    names = sorted(p.stem for p in TEMPLATES.glob("*.jinja"))
    assert names == sorted(SPECIALS)
    families = {n.split("-")[0] + n.split("-")[1][:4] for n in names}
    assert len(families) >= 10


def _transformers_tokenizer(tokenizer_dirs, name) -> PreTrainedTokenizerFast:
    bos, eos = SPECIALS[name]
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_dirs["byte_level"] / "tokenizer.json"),
        bos_token=bos,
        eos_token=eos,
    )
    tok.chat_template = (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")
    return tok


def _ours(tok: PreTrainedTokenizerFast) -> ChatTemplate:
    """Our template with the special tokens ChatModel passes (tokenizer_config.json's)."""
    return ChatTemplate(tok.chat_template, dict(tok.special_tokens_map))


def _rows(messages):
    return [{"role": m.role, "content": m.content} for m in messages]


def _transformers(tok, messages) -> str:
    return tok.apply_chat_template(_rows(messages), tokenize=False, add_generation_prompt=True)


@pytest.mark.parametrize("name", sorted(SPECIALS))
@pytest.mark.parametrize("chat", sorted(CHATS))
@pytest.mark.parametrize("system", [False, True], ids=["no system", "system"])
def test_i4_rendering_equals_transformers(tokenizer_dirs, name, chat, system):
    tok = _transformers_tokenizer(tokenizer_dirs, name)
    messages = [SYSTEM, *CHATS[chat]] if system else CHATS[chat]
    try:
        expected = _transformers(tok, messages)
    except TemplateError as err:  # B3: a template that refuses a system role (Gemma 2)
        assert system and "System role not supported" in str(err)
        expected = _transformers(tok, fold_system_prompt(messages))
    except TypeError:  # llama.cpp's Phi-4 edit iterates `tools`, which transformers sets to None
        assert name in BROKEN_IN_TRANSFORMERS
        with pytest.raises(ChatTemplateError, match="TypeError: 'NoneType' object is not iter"):
            _ours(tok).render(messages, add_generation_prompt=True)
        return
    ours = _ours(tok).render(messages, add_generation_prompt=True)
    assert ours == expected
    assert SYSTEM.content.split(".")[0] in ours if system else True


@pytest.mark.parametrize(
    "source",
    [
        "{{ messages | tojson(indent=2, sort_keys=True) }}{{ {'b': 'é<>'} | tojson }}",
        "{{ {'x': [1, 2]} | tojson(separators=(',', ':'), ensure_ascii=True) }}",
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.role }}"
        "{% continue %}x{% endfor %}",
        "{% generation %}{% set inner = 'kept inside' %}{{ inner }}{% endgeneration %}"
        "[{{ inner }}]{{ tools is none }}{{ documents is none }}{{ bos_token }}",
        "{{ strftime_now('%Y') | length }}{{ raise_exception is defined }}",
    ],
)
def test_i4_extensions_tags_and_globals_equal_transformers(tokenizer_dirs, source):
    tok = _transformers_tokenizer(tokenizer_dirs, "Qwen-Qwen2.5-7B-Instruct")
    tok.chat_template = source
    messages = [Message("user", "é"), Message("assistant", "b"), Message("user", "c")]
    assert _ours(tok).render(messages) == _transformers(tok, messages)


def test_i4_refusals_raise_in_both(tokenizer_dirs):
    tok = _transformers_tokenizer(tokenizer_dirs, "google-gemma-3-270m-it")
    two_users = [Message("user", "a"), Message("user", "b")]
    with pytest.raises(TemplateError, match="alternate"):
        _transformers(tok, two_users)
    with pytest.raises(ChatTemplateError, match="alternate"):
        _ours(tok).render(two_users)


def test_i4_model_without_a_template_reads_the_message_as_it_is(tokenizers, tmp_path):
    """A T5 folder has no chat template: the prompt is the last user message, with `</s>`."""
    config = {"eos_token": "</s>", "pad_token": "<pad>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert find_template(tmp_path, config) is None
    tok = tokenizers["t5_like"]
    chat = [SYSTEM, Message("user", "Hello world"), Message("assistant", "x")]
    prompt = build_prompt([*chat, Message("user", "Hello")], tok, None, 512, 16)
    assert prompt.prompt_text == "Hello"
    assert list(prompt.prompt_ids) == tok.encode("Hello", add_special_tokens=True)
    assert prompt.prompt_ids[-1] == tok.token_id("</s>")
