"""Chat templates (cases B1-B4): one BOS, generation prompt, system-role refusal, sandbox."""

from __future__ import annotations

import time

import pytest

from desktop.engine.chat_template import DEADLINE_S, ChatTemplate, find_template, plain_prompt
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


# QA defect 4: a chat template is untrusted code; every fault is a ChatTemplateError, bounded in
# memory and time, never a traceback.
@pytest.mark.parametrize(
    ("source", "fault"),
    [
        ("{{ 'x' * 10**10 }}", "was stopped: it would build"),
        ("{{ [1, 2] * 10**9 }}", "was stopped: it would build"),
        ("{{ 10 ** 100000 }}", "was stopped: it computed a number"),
        ("{% set n = 2 ** 60000 %}{{ n * n }}", "was stopped: it built a number"),
        (
            "{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "was stopped",
        ),
        ("{% set s = 'x' * 1000000 %}{{ (s + s) + (s + s) }}", "was stopped"),
        ("{{ 'x'.center(10**10) }}", "was stopped: it passed the number"),
        ("{{ 'x' | center(10**10) }}", "was stopped: it passed the number"),
        ("{{ '%099999999999d' % 1 }}", "was stopped: its format asks"),
        ("{{ ('x' * 1000) | replace('x', 'y' * 100000) }}", "was stopped: it would build"),
        ("{{ ('x' * 1000000).replace('x', 'yyy') }}", "was stopped: it would build"),
        ("{% for i in range(99999) %}{{ 'x' * 99 }}{% endfor %}", "output passed"),
        ("{{ 1/0 }}", "failed: ZeroDivisionError: division by zero"),
        ("{{ range(10**9) }}", "was stopped: it passed the number"),
        ("{{ range(200000) }}", "failed: OverflowError: Range too big"),
        ("{{ messages[5]['content'] }}", "failed: UndefinedError"),
        ("{{ 'a' - 1 }}", "failed: TypeError"),
    ],
)
def test_b4_template_faults_and_bounds_are_clear_errors(source, fault):
    with pytest.raises(ChatTemplateError, match=fault):
        ChatTemplate(source, {}).render([Message("user", "x")])


def test_b4_nested_loops_stop_at_the_deadline():
    source = (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% set k = j %}"
        "{% endfor %}{% endfor %}x"
    )
    started = time.monotonic()
    with pytest.raises(ChatTemplateError, match="ran longer than 2 s"):
        ChatTemplate(source, {}).render([Message("user", "x")])
    assert time.monotonic() - started < DEADLINE_S + 1.0


def test_b4_deadline_is_per_render():
    template = ChatTemplate("{% for m in messages %}{{ m['content'] }}{% endfor %}", {})
    assert template.render([Message("user", "a")]) == "a"
    time.sleep(0.05)
    assert template.render([Message("user", "b")]) == "b"


@pytest.mark.parametrize("source", ["", "   \n", "{% if false %}x{% endif %}"])
def test_empty_template_or_empty_prompt_is_an_error(source):
    with pytest.raises(ChatTemplateError, match="empty"):
        ChatTemplate(source, {}).render([Message("user", "x")])


def test_find_template_keeps_an_empty_template_present(tmp_path):
    assert find_template(tmp_path, {"chat_template": ""}) == ""
    (tmp_path / "chat_template.jinja").write_text(" \n", encoding="utf-8")
    assert find_template(tmp_path, {}) == " \n"


def test_big_but_legitimate_conversation_renders():
    text = "word " * 50_000  # 250k characters: a long paste
    assert ChatTemplate(CHATML, SPECIALS).render([Message("user", text)]).count("word") == 50_000
