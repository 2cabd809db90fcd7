"""Chat templates: a model folder's Jinja template rendered in a bounded sandbox.

Owns: finding the template (tokenizer_config.json `chat_template`, chat_template.jinja or
chat_template.json), rendering it in jinja2's ImmutableSandboxedEnvironment (case B4: a template is
untrusted input), honouring add_generation_prompt (B2) and folding the system prompt into the first
user turn when a template refuses the system role (B3). Does not tokenize (tokenizer.py does).

Renders what transformers renders (case I4): the environment is the one transformers'
`_compile_jinja_template` builds (transformers/utils/chat_template_utils.py, 4.57): trim_blocks,
lstrip_blocks, the loopcontrols extension, the `{% generation %}` tag (its body rendered as is),
`raise_exception` and `strftime_now` globals, and its `tojson` filter (ensure_ascii, indent,
separators, sort_keys; no HTML escaping); a render gets `messages`, `add_generation_prompt`,
`tools=None`, `documents=None` and the tokenizer's special tokens (bos_token, eos_token, ...), as
`apply_chat_template` passes them. tests/engine/test_template_families.py checks the templates of
13 model families against transformers itself.

Bounds (QA defect 4: `{{ 'x' * 10**10 }}` grew a process to 21 GB, nested `range(99999)` loops
ran for minutes): every value built by `*`, `+`, `~`, `**`, `%`, a filter or a method call stays
under MAX_SIZE characters or items (checked before `*`, `**`, `replace`, `join` and format widths
build it, after the others, which can at most add bounded operands), integers under 65,536 bits;
numbers passed to filters and methods stay under MAX_SIZE (`'x'.center(10**10)`); `range()`
keeps jinja2's MAX_RANGE (100,000); rendering stops after DEADLINE_S seconds, checked at every
call, attribute or item lookup, operator, filter and output chunk; the rendered prompt is at most
MAX_SIZE characters. Anything that goes wrong while rendering, whatever its type, is a
ChatTemplateError naming the fault, never a traceback.
Residual gap: a loop that does none of those things per iteration (nested `for` over an already
built string with an empty body) is bounded only by MAX_SIZE squared iterations.

Empty templates: a template that exists but is empty or only whitespace is an error
("The model's chat template is empty"), as is one that renders an empty prompt: a chat model
without its chat format answers garbage, so the user is told instead of shown that.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from desktop.engine.errors import ChatTemplateError
from desktop.engine.events import Message

DEADLINE_S = 2.0
"""Wall-clock seconds one render may take. Real chat templates render in milliseconds."""

MAX_SIZE = 2_000_000
"""Largest string (characters) or sequence (items) a template may build, and the largest number
it may pass to a filter or method: about 500k tokens, above any model's context window."""

_MAX_INT_BITS = 65_536  # an integer may have at most this many bits (`**`, repeated `*`)
_DIGITS = re.compile(r"\d+")


class _RaisedByTemplate(TemplateError):
    """The template called raise_exception(message) on purpose."""


class _LimitExceeded(Exception):
    """The template went past one of the sandbox's bounds (size, time)."""


class _GenerationTag(Extension):
    """transformers' `{% generation %}...{% endgeneration %}`: marks assistant text for training
    masks; a prompt renders its body as is (a call block, as in transformers, so scoping agrees)."""

    tags = frozenset({"generation"})  # type: ignore[assignment]  # jinja2 declares set[str]

    def parse(self, parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_body", [], [])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _body(self, caller: Callable[[], str]) -> str:
        return caller()


def _raise_exception(message: str) -> None:
    raise _RaisedByTemplate(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


def _bounded(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise _LimitExceeded(f"it built a number of {value.bit_length():,} bits")
    if _size(value) > MAX_SIZE:
        raise _LimitExceeded(f"it built a value of {_size(value):,} items (limit {MAX_SIZE:,})")
    return value


def _check_args(args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    for arg in [*args, *kwargs.values()]:
        if isinstance(arg, int | float) and not isinstance(arg, bool) and abs(arg) > MAX_SIZE:
            raise _LimitExceeded(f"it passed the number {arg:.6g} (limit {MAX_SIZE:,})")


def _check_growth(name: str, value: Any, args: Sequence[Any]) -> None:
    """Sizes of `replace`, `join` and format results, estimated before they are built."""
    if name in ("format", "format_map", "%") and isinstance(value, str):
        widths = [int(d) for d in _DIGITS.findall(value)]  # "%09999999999d", "{:>9999999999}"
        if widths and max(widths) > MAX_SIZE:
            raise _LimitExceeded(f"its format asks for a width of {max(widths):,}")
    elif name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        hits = value.count(old) if old else len(value) + 1
        _bounded_count(len(value) + hits * max(0, len(new) - len(old)))
    elif name == "join" and isinstance(value, str) and args and isinstance(args[0], list | tuple):
        items = args[0]
        _bounded_count(sum(_size(x) for x in items) + len(value) * len(items))


def _bounded_count(size: int) -> None:
    if size > MAX_SIZE:
        raise _LimitExceeded(f"it would build a value of {size:,} items (limit {MAX_SIZE:,})")


class _BoundedCodeGenerator(CodeGenerator):
    """Routes the `~` operator's result through `environment.bounded` (jinja2 compiles `~` to a
    plain join that the sandbox does not see)."""

    def visit_Concat(self, node, frame) -> None:
        self.write("environment.bounded(")
        super().visit_Concat(node, frame)
        self.write(")")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox with size bounds on operators, filters and calls, and a
    per-thread wall-clock deadline (see the module docstring)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local = threading.local()

    def start_clock(self) -> None:
        self._local.deadline = time.monotonic() + DEADLINE_S

    def check_clock(self) -> None:
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise _LimitExceeded(f"it ran longer than {DEADLINE_S:g} s")

    def bounded(self, value: Any) -> Any:
        self.check_clock()
        return _bounded(value)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        self.check_clock()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _size(seq) and isinstance(times, int):
                    _bounded_count(_size(seq) * times)
        if operator == "%":
            _check_growth("%", left, ())
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            bits = right * math.log2(abs(left)) if abs(left) > 1 else 0
            if bits > _MAX_INT_BITS:
                raise _LimitExceeded(f"it computed a number of {bits:,.0f} bits")
        return _bounded(super().call_binop(context, operator, left, right))

    def call(__self, __context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.check_clock()
        _check_args(args, kwargs)
        owner = getattr(__obj, "__self__", None)
        _check_growth(getattr(__obj, "__name__", ""), owner, args)
        return _bounded(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.check_clock()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.check_clock()
        return super().getitem(obj, argument)

    def bound_filter(self, name: str, func: Callable) -> Callable:
        """`func` with the clock, argument and size checks (keeps jinja2's pass_* marks)."""

        # @pass_context / @pass_environment filters get that object first (jinja2 sets this mark)
        skip = 0 if getattr(func, "jinja_pass_arg", None) is None else 1

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            self.check_clock()
            plain = args[skip:]
            _check_args(plain[1:], kwargs)
            if plain:
                _check_growth(name, plain[0], plain[1:])
                if name == "join" and isinstance(plain[0], list | tuple):
                    sep = plain[1] if len(plain) > 1 else kwargs.get("d", "")
                    _check_growth("join", str(sep), [list(plain[0])])
            return _bounded(func(*args, **kwargs))

        return checked


def find_template(folder: Path, tokenizer_config: dict) -> str | None:
    """The folder's chat template text, or None when it names none (most seq2seq models).

    An empty template that is present is returned as it is (rendering it is an error)."""
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
    return value if isinstance(value, str) else None


class ChatTemplate:
    """A compiled, sandboxed chat template. Raises ChatTemplateError on a broken template."""

    def __init__(self, source: str, special_tokens: dict[str, Any]):
        env = _BoundedSandbox(
            trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, loopcontrols]
        )
        env.filters["tojson"] = _tojson
        env.filters = {name: env.bound_filter(name, f) for name, f in env.filters.items()}
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        self._env = env
        self._empty = not source.strip()
        try:
            self._template = env.from_string(source)
        except TemplateError as err:
            raise ChatTemplateError(f"The model's chat template does not compile: {err}") from err
        except Exception as err:  # the compiler itself failing is still the template's fault
            raise ChatTemplateError(_failed(err)) from err
        self._special_tokens = special_tokens

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """The prompt text for `messages`, ending with the assistant header (B2).

        A template that refuses a system role gets the system prompt folded into the first user
        turn (B3). Raises ChatTemplateError for any other failure: sandbox escapes (B4), a bound
        exceeded (size, DEADLINE_S), any exception raised while rendering, an empty template or
        an empty result.
        """
        if self._empty:
            raise ChatTemplateError(
                "The model's chat template is empty: fix chat_template in the model folder."
            )
        try:
            text = self._render(messages, add_generation_prompt)
        except _RaisedByTemplate as err:
            folded = fold_system_prompt(messages)
            if folded == list(messages):
                raise ChatTemplateError(f"The model's chat template refused: {err}") from err
            try:
                text = self._render(folded, add_generation_prompt)
            except _RaisedByTemplate as again:
                raise ChatTemplateError(f"The model's chat template refused: {again}") from again
        if not text.strip():
            raise ChatTemplateError("The model's chat template rendered an empty prompt.")
        return text

    def _render(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        rows = [{"role": m.role, "content": m.content} for m in messages]
        self._env.start_clock()
        parts: list[str] = []
        size = 0
        try:
            for part in self._template.generate(
                messages=rows,
                tools=None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **self._special_tokens,
            ):
                size += len(part)
                if size > MAX_SIZE:
                    raise _LimitExceeded(f"its output passed {MAX_SIZE:,} characters")
                self._env.check_clock()
                parts.append(part)
        except _RaisedByTemplate:
            raise
        except SecurityError as err:
            raise ChatTemplateError(
                "The model's chat template tried an unsafe operation and was stopped "
                f"(sandbox: {err})."
            ) from err
        except _LimitExceeded as err:
            raise ChatTemplateError(f"The model's chat template was stopped: {err}.") from err
        except (Exception, RecursionError) as err:  # untrusted code: any fault is the template's
            raise ChatTemplateError(_failed(err)) from err
        return "".join(parts)


def _failed(err: BaseException) -> str:
    return f"The model's chat template failed: {type(err).__name__}: {err}"


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
