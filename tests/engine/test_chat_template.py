"""Chat templates (cases B1-B4): one BOS, generation prompt, system-role refusal, sandbox."""

from __future__ import annotations

import pytest

from desktop.engine.chat_template import ChatTemplate, find_template, plain_prompt
from desktop.engine.errors import ChatTemplateError
from desktop.engine.events import Message

# SmolLM2-135M-Instruct's own template (ChatML).
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# A Llama-2 style template that writes BOS itself.
WRITES_BOS = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }}"
    " [/INST]{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
# Gemma-style: refuses a system role.
NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
SPECIALS = {"bos_token": "<s>", "eos_token": "</s>"}
CHAT = [Message("system", "Be brief."), Message("user", "Hi!")]


def test_b1_template_that_writes_bos_gives_exactly_one(tokenizers):
    tok = tokenizers["metaspace"]
    assert tok.adds_bos
    text = ChatTemplate(WRITES_BOS, SPECIALS).render([Message("user", "Hello world")])
    assert text.startswith("<s>[INST]")
    ids = tok.encode_prompt(text, rendered_by_template=True)
    assert ids.count(tok.bos_id) == 1 and ids[0] == tok.bos_id


def test_b1_template_without_bos_gets_one(tokenizers):
    tok = tokenizers["metaspace"]
    text = ChatTemplate(WRITES_BOS.removeprefix("{{ bos_token }}"), SPECIALS).render(CHAT[1:])
    ids = tok.encode_prompt(text, rendered_by_template=True)
    assert ids.count(tok.bos_id) == 1 and ids[0] == tok.bos_id


def test_b1_plain_text_gets_the_tokenizer_additions_once(tokenizers):
    tok = tokenizers["t5_like"]
    ids = tok.encode_prompt("Hello world", rendered_by_template=False)
    assert ids[-1] == tok.token_id("</s>") and ids.count(tok.token_id("</s>")) == 1


def test_b2_generation_prompt_ends_with_assistant_header():
    template = ChatTemplate(CHATML, SPECIALS)
    text = template.render(CHAT, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert not template.render(CHAT, add_generation_prompt=False).endswith("assistant\n")


def test_b3_system_role_refused_is_folded_into_first_user_turn():
    text = ChatTemplate(NO_SYSTEM, SPECIALS).render(CHAT)
    assert text == "<start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n<start_of_turn>model\n"


def test_b3_other_refusals_are_a_clear_error():
    template = ChatTemplate("{{ raise_exception('Conversation roles must alternate') }}", {})
    with pytest.raises(ChatTemplateError, match="Conversation roles must alternate"):
        template.render([Message("user", "x")])


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__init__.__globals__ }}",
        "{% set x = messages.append({'role': 'user'}) %}{{ x }}",
    ],
)
def test_b4_sandbox_escape_is_a_clear_error(source):
    with pytest.raises(ChatTemplateError, match="unsafe operation"):
        ChatTemplate(source, {}).render([Message("user", "x")])


def test_helpers_tojson_and_strftime_now():
    template = ChatTemplate("{{ messages | tojson }}|{{ strftime_now('%Y') | length }}", {})
    assert template.render([Message("user", "é")]) == '[{"role": "user", "content": "é"}]|4'


def test_broken_template_is_a_clear_error():
    with pytest.raises(ChatTemplateError, match="does not compile"):
        ChatTemplate("{% for %}", {})


def test_find_template_sources(tmp_path):
    assert find_template(tmp_path, {}) is None
    assert find_template(tmp_path, {"chat_template": CHATML}) == CHATML
    named = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    assert find_template(tmp_path, {"chat_template": named}) == "D"
    (tmp_path / "chat_template.jinja").write_text("J", encoding="utf-8")
    assert find_template(tmp_path, {"chat_template": CHATML}) == "J"


def test_plain_prompt_is_the_last_user_turn():
    assert plain_prompt([*CHAT, Message("assistant", "Hey"), Message("user", "Again")]) == "Again"
