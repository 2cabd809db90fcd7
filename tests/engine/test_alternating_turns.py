"""Case I9 (cherry-studio PR #5051, tabby#1105): after a reply fails, the next message in that chat
still gets an answer, also with templates that require user and assistant turns to alternate.
Rule (prompt.py): an assistant turn without text is left out, consecutive turns of one role are
merged, joined with a blank line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from desktop.engine.chat import load_model
from desktop.engine.chat_template import ChatTemplate
from desktop.engine.errors import ChatTemplateError
from desktop.engine.events import GenerationDone, GenerationSettings, Message, PromptInfo
from desktop.engine.prompt import alternating_turns, build_prompt

TEMPLATES = Path(__file__).parent / "templates"
# Llama 2 chat's template (meta-llama/Llama-2-7b-chat-hf tokenizer_config.json)
LLAMA2_CHAT = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)
SPECIALS = {"bos_token": "<s>", "eos_token": "</s>"}
AFTER_FAILURE = [  # the failed reply was dropped; its user turn was kept
    Message("user", "What is 2+2?"),
    Message("user", "Hello? Are you there?"),
]


def _template(name: str) -> ChatTemplate:
    source = LLAMA2_CHAT if name == "llama2" else (TEMPLATES / f"{name}.jinja").read_text("utf-8")
    return ChatTemplate(source, SPECIALS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "google-gemma-2-2b-it",
            "<s><start_of_turn>user\nWhat is 2+2?\n\nHello? Are you there?<end_of_turn>\n"
            "<start_of_turn>model\n",
        ),
        (
            "mistralai-Mistral-Nemo-Instruct-2407",
            "<s>[INST]What is 2+2?\n\nHello? Are you there?[/INST]",
        ),
        ("llama2", "<s>[INST] What is 2+2?\n\nHello? Are you there? [/INST]"),
    ],
)
def test_i9_next_message_after_a_failed_reply_renders(tokenizers, name, expected):
    template = _template(name)
    with pytest.raises(ChatTemplateError, match="alternate"):
        template.render(AFTER_FAILURE)  # what the model was given before I9
    prompt = build_prompt(AFTER_FAILURE, tokenizers["metaspace"], template, 4096, 16)
    assert prompt.prompt_text == expected


def test_i9_empty_failed_reply_is_left_out_and_a_partial_reply_kept(tokenizers):
    template = _template("google-gemma-2-2b-it")
    failed = [Message("user", "A"), Message("assistant", " \n"), Message("user", "B")]
    text = build_prompt(failed, tokenizers["metaspace"], template, 4096, 16).prompt_text
    assert text == "<s><start_of_turn>user\nA\n\nB<end_of_turn>\n<start_of_turn>model\n"
    partial = [Message("user", "A"), Message("assistant", "Par"), Message("user", "B")]
    text = build_prompt(partial, tokenizers["metaspace"], template, 4096, 16).prompt_text
    assert "<start_of_turn>model\nPar<end_of_turn>\n<start_of_turn>user\nB" in text


def test_i9_the_rule():
    messages = [
        Message("system", "S"),
        Message("user", "a"),
        Message("assistant", ""),
        Message("user", "b"),
        Message("assistant", "x"),
        Message("assistant", "y"),
        Message("user", "c"),
    ]
    assert alternating_turns(messages) == [
        Message("system", "S"),
        Message("user", "a\n\nb"),
        Message("assistant", "x\n\ny"),
        Message("user", "c"),
    ]
    ordinary = [Message("user", "a"), Message("assistant", "b"), Message("user", "c")]
    assert alternating_turns(ordinary) == ordinary


def test_i9_a_real_model_with_an_alternating_template_answers(tiny_llama_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, folder)
    gemma = (TEMPLATES / "google-gemma-2-2b-it.jinja").read_text(encoding="utf-8")
    (folder / "chat_template.jinja").write_text(gemma, encoding="utf-8")
    model = load_model(folder, provider="cpu", threads=1)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=4)
    events = list(model.generate(AFTER_FAILURE, settings))
    assert isinstance(events[0], PromptInfo) and "What is 2+2?\n\nHello?" in events[0].prompt_text
    done = events[-1]
    assert isinstance(done, GenerationDone) and done.finish_reason in ("length", "stop")
    assert done.error is None
