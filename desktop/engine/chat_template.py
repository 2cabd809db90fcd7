"""Chat templates: a model folder's Jinja template rendered in a sandbox.

Owns: finding the template (tokenizer_config.json `chat_template`, chat_template.jinja or
chat_template.json), rendering it with the helpers transformers provides (raise_exception,
strftime_now, tojson) in jinja2's ImmutableSandboxedEnvironment (case B4: a template is untrusted
input), honouring add_generation_prompt (B2) and folding the system prompt into the first user turn
when a template refuses the system role (B3). Does not tokenize (tokenizer.py does).
Source of the environment's settings: transformers' `_compile_jinja_template`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from jinja2.exceptions import SecurityError, TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from desktop.engine.errors import ChatTemplateError
from desktop.engine.events import Message


class _RaisedByTemplate(TemplateError):
    """The template called raise_exception(message) on purpose."""


def _raise_exception(message: str) -> None:
    raise _RaisedByTemplate(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def find_template(folder: Path, tokenizer_config: dict) -> str | None:
    """The folder's chat template text, or None (most seq2seq models have none)."""
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    json_file = folder / "chat_template.json"
    if json_file.is_file():
        value = json.loads(json_file.read_text(encoding="utf-8")).get("chat_template")
    else:
        value = tokenizer_config.get("chat_template")
    if isinstance(value, list):  # [{"name": "default", "template": ...}, {"name": "tool_use"...}]
        named = {item.get("name"): item.get("template") for item in value}
        value = named.get("default") or next(iter(named.values()), None)
    return value if isinstance(value, str) and value.strip() else None


class ChatTemplate:
    """A compiled, sandboxed chat template. Raises ChatTemplateError on a broken template."""

    def __init__(self, source: str, special_tokens: dict[str, str]):
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            self._template = env.from_string(source)
        except TemplateError as err:
            raise ChatTemplateError(f"The model's chat template does not compile: {err}") from err
        self._special_tokens = special_tokens

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """The prompt text for `messages`, ending with the assistant header (B2).

        A template that refuses a system role gets the system prompt folded into the first user
        turn (B3). Raises ChatTemplateError for any other failure, sandbox escapes included (B4).
        """
        try:
            return self._render(messages, add_generation_prompt)
        except _RaisedByTemplate as err:
            folded = fold_system_prompt(messages)
            if folded == list(messages):
                raise ChatTemplateError(f"The model's chat template refused: {err}") from err
            try:
                return self._render(folded, add_generation_prompt)
            except _RaisedByTemplate as again:
                raise ChatTemplateError(f"The model's chat template refused: {again}") from again

    def _render(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        rows = [{"role": m.role, "content": m.content} for m in messages]
        try:
            return self._template.render(
                messages=rows, add_generation_prompt=add_generation_prompt, **self._special_tokens
            )
        except _RaisedByTemplate:
            raise
        except SecurityError as err:
            raise ChatTemplateError(
                "The model's chat template tried an unsafe operation and was stopped "
                f"(sandbox: {err})."
            ) from err
        except (TemplateError, TypeError, ValueError, KeyError, AttributeError) as err:
            raise ChatTemplateError(f"The model's chat template failed: {err}") from err


def fold_system_prompt(messages: Sequence[Message]) -> list[Message]:
    """System prompt prepended to the first user turn (for templates without a system role)."""
    systems = [m.content for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    if not systems:
        return list(messages)
    for index, message in enumerate(rest):
        if message.role == "user":
            merged = "\n\n".join([*systems, message.content])
            rest[index] = Message("user", merged)
            return rest
    return [Message("user", "\n\n".join(systems)), *rest]


def plain_prompt(messages: Sequence[Message]) -> str:
    """For models without a template (most seq2seq): the last user turn as it is."""
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""
