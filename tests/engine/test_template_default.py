"""A chat template's own default system prompt, found by rendering it with and without one
(desktop/engine/template_default.py), and cached per model (ChatModel.template_system_prompt)."""

from __future__ import annotations

import pytest

from desktop.engine.chat import load_model
from desktop.engine.chat_template import ChatTemplate
from desktop.engine.template_default import default_system_prompt
from tests.fixtures.decoder_models import CHATML_TEMPLATE

# SmolLM2-135M-Instruct's chat template, as its tokenizer_config.json has it
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


SMOLLM2_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# Qwen2.5's way: the default is in an else branch of "is the first message a system message"
QWEN_LIKE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{{ '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
    "helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
# Llama 3.1's way: a header written whether or not there is a system message (no default text)
ALWAYS_HEADER = (
    "{{ '<|start|>system\nKnowledge cutoff: 2023\n\n' }}"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% endif %}"
    "{{ '<|end|>' }}{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ '<|start|>' + message['role'] + '\n' + message['content'] + '<|end|>' }}"
    "{% endif %}{% endfor %}"
)
# Gemma's way: no system role at all (the engine folds the system prompt into the user turn)
NO_SYSTEM_ROLE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<start>' + message['role'] + '\n' + message['content'] + '<end>\n' }}{% endfor %}"
)


@pytest.mark.parametrize(
    ("source", "default"),
    [
        (SMOLLM2_TEMPLATE, SMOLLM2_DEFAULT),
        (QWEN_LIKE, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
        (CHATML_TEMPLATE, None),
        (ALWAYS_HEADER, None),
        (NO_SYSTEM_ROLE, None),
        ("{{ raise_exception('never renders') }}", None),
    ],
    ids=["smollm2", "qwen-like", "chatml", "always-header", "no-system-role", "raises"],
)
def test_default_system_prompt_of_each_kind_of_template(source, default):
    assert default_system_prompt(ChatTemplate(source, {})) == default


def test_no_template_has_no_default():
    assert default_system_prompt(None) is None


def test_a_model_finds_its_templates_default_once(tiny_llama_dir, tmp_path):
    folder = tmp_path / "tiny-with-default"
    folder.mkdir()
    for item in tiny_llama_dir.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "chat_template.jinja").write_text(SMOLLM2_TEMPLATE, encoding="utf-8")
    model = load_model(folder)
    try:
        assert model.template_system_prompt == SMOLLM2_DEFAULT
        assert "template_system_prompt" in vars(model)  # cached on the model
    finally:
        model.close()


@pytest.mark.slow
def test_the_default_model_has_smollm2s_default_system_prompt(default_model_dir):
    model = load_model(default_model_dir)
    try:
        assert model.template_system_prompt == SMOLLM2_DEFAULT
    finally:
        model.close()
