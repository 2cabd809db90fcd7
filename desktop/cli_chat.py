"""`tokenglass chat | tokenize | models`: the engine from a terminal.

`chat` streams a reply (or JSON Lines: one object per token in OpenAI's logprobs shape plus our
fields, then one `"type": "done"` object); without a MESSAGE it reads turns from stdin.
`tokenize` shows a text's tokens with ids and byte spans; `models` lists installed models.
Errors are `EngineError`s, turned into one line on stderr by desktop/cli.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import signal
import sys
import threading
from collections.abc import Sequence

from desktop import openai_json
from desktop.engine.catalog import list_models, resolve_model
from desktop.engine.errors import EngineError
from desktop.engine.sampling import MAX_SEED
from desktop.engine.tokenizer import well_formed

PROVIDERS = ("auto", "cpu", "cuda", "dml", "coreml")
_STOP_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\\\": "\\"}
_STOP_ESCAPE = re.compile(r"\\[nt\\]")


def stop_string(text: str) -> str:
    """A `--stop` value as the stop string: only the escapes `\\n` (newline), `\\t` (tab) and
    `\\\\` (one backslash) are read; any other backslash and all non-ASCII text stay as typed
    (QA defect 5: unicode_escape turned `é` into `Ã©`). So `C:\\\\new` stops at `C:\\new`."""
    return _STOP_ESCAPE.sub(lambda m: _STOP_ESCAPES[m.group()], text)


def number(kind: type, low: float | None = None, high: float | None = None, *, above: bool = False):
    """An argparse `type` for a number in a range: `low` <= value (`low` < value when `above`),
    value <= `high`. The error names the range, e.g. "must be > 0 and <= 1, got 5"."""
    bounds = []
    shown = str if kind is int else (lambda v: f"{v:g}")
    if low is not None:
        bounds.append(f"{'>' if above else '>='} {shown(low)}")
    if high is not None:
        bounds.append(f"<= {shown(high)}")
    rule = " and ".join(bounds)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        too_low = low is not None and (value <= low if above else value < low)
        if too_low or (high is not None and value > high) or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    chat = subparsers.add_parser("chat", help="chat with a model in the terminal")
    chat.add_argument("message", nargs="?", help="one message; without it, read turns from stdin")
    _model_args(chat)
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--max-new-tokens", type=number(int, 1), help=">= 1")
    chat.add_argument(
        "--temperature",
        type=number(float, 0),
        help=">= 0; 0 = greedy: the most likely token after the repetition penalty (as in "
        "llama.cpp and transformers; --repetition-penalty 1 for the model's own argmax)",
    )
    chat.add_argument("--top-k", type=number(int, 0), help=">= 0; 0 = off")
    chat.add_argument("--top-p", type=number(float, 0, 1, above=True), help="> 0 and <= 1")
    chat.add_argument("--min-p", type=number(float, 0, 1), help="0 to 1; 0 = off")
    chat.add_argument(
        "--repetition-penalty", type=number(float, 0, above=True), help="> 0; 1 = off"
    )
    chat.add_argument(
        "--seed", type=number(int, 0, MAX_SEED), help=f"0..{MAX_SEED}; reproduces a reply exactly"
    )
    chat.add_argument(
        "--stop",
        action="append",
        default=[],
        type=stop_string,
        help="stop string (repeatable); \\n, \\t and \\\\ are newline, tab and backslash",
    )
    chat.add_argument(
        "--top-logprobs", type=number(int, 0, 20), help="alternatives per token, 0 to 20"
    )
    chat.add_argument("--json", action="store_true", help="JSON Lines: one object per token")
    chat.add_argument("--no-save", action="store_true", help="do not save this chat in the history")
    chat.set_defaults(func=run_chat)

    tokenize = subparsers.add_parser("tokenize", help="show how a text is tokenized")
    tokenize.add_argument("text")
    _model_args(tokenize)
    tokenize.add_argument("--json", action="store_true")
    tokenize.set_defaults(func=run_tokenize)

    models = subparsers.add_parser("models", help="list installed models")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=run_models)


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="installed model name or model folder (default model)")
    parser.add_argument("--provider", choices=PROVIDERS, default="auto")
    parser.add_argument(
        "--threads", type=number(int, 1), help="intra-op threads, >= 1 (default: up to 4)"
    )


def _load(args: argparse.Namespace):
    from desktop.engine.chat import load_model  # onnxruntime is imported only here

    model = load_model(resolve_model(args.model), provider=args.provider, threads=args.threads)
    if model.provider.fallback_reason:
        print(f"tokenglass: {model.provider.fallback_reason}", file=sys.stderr)
    return model


def _settings(model, args: argparse.Namespace):
    base = model.default_settings()
    overrides = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "min_p": args.min_p,
        "repetition_penalty": args.repetition_penalty,
        "seed": args.seed,
        "top_logprobs": args.top_logprobs,
    }
    changes = {k: v for k, v in overrides.items() if v is not None}
    if args.stop:
        changes["stop_strings"] = tuple(args.stop)  # escapes already read by stop_string
    return dataclasses.replace(base, **changes)


def token_json(step) -> dict:
    """A TokenStep as a JSON line: OpenAI's logprobs entry plus ours (desktop/openai_json.py)."""
    return {"type": "token", **openai_json.token_json(step)}


def phase_json(phase) -> dict:
    """A pipeline Phase as a JSON line (desktop/openai_json.py builds its fields)."""
    return {"type": "phase", **openai_json.phase_json(phase)}


def done_json(done, provider_fallback_reason: str | None = None) -> dict:
    """A GenerationDone as the last JSON line; `provider_fallback_reason`: why a requested GPU
    execution provider is not in use (ProviderInfo.fallback_reason), or None. `seed` is null for
    a greedy reply (temperature 0), which draws nothing (as the window's reply footer)."""
    fields = openai_json.done_json(done)
    return {"type": "done", **fields, "provider_fallback_reason": provider_fallback_reason}


def finish_note(done) -> str | None:
    """A line for stderr when a reply did not end on its own (text mode), else None."""
    if done.finish_reason == "cancelled":
        return f"reply cancelled after {done.completion_tokens} tokens"
    if done.finish_reason != "length":
        return None
    if done.completion_tokens >= done.settings.max_new_tokens:
        return (
            f"reply cut off at max new tokens ({done.settings.max_new_tokens}); "
            "raise --max-new-tokens for more"
        )
    return "reply cut off at the end of the model's context window"


@dataclasses.dataclass
class _Turn:
    """What one reply produced, for printing and for the history."""

    done: object  # GenerationDone
    steps: list
    prompt: object | None  # PromptInfo
    phases: list = dataclasses.field(default_factory=list)  # Phase records


def _reply(model, messages: Sequence, settings, as_json: bool) -> _Turn:
    """Stream one reply to stdout. Ctrl-C stops it between decode steps (finish reason
    "cancelled"); the partial reply is still returned, as is one that ended in an error."""
    from desktop.engine.events import GenerationDone, Phase, PromptInfo, TokenStep

    cancel = threading.Event()
    turn = _Turn(done=None, steps=[], prompt=None)
    # Ctrl-C sets the cancel flag instead of raising inside the generator, which would end it
    # without its GenerationDone; the loop checks the flag before each decode step.
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set()) if on_main else None
    try:
        for event in model.generate(messages, settings, cancel):
            if isinstance(event, PromptInfo):
                turn.prompt = event
            elif isinstance(event, TokenStep):
                turn.steps.append(event)
                if as_json:
                    print(openai_json.dumps(token_json(event)), flush=True)
                else:
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
            elif isinstance(event, Phase):
                turn.phases.append(event)
                if as_json:
                    print(openai_json.dumps(phase_json(event)), flush=True)
            elif isinstance(event, GenerationDone):
                turn.done = event
    finally:
        if on_main:
            signal.signal(signal.SIGINT, previous)
    assert turn.done is not None  # generate() always ends with one GenerationDone
    done = turn.done
    if as_json:
        fallback = model.provider.fallback_reason
        print(openai_json.dumps(done_json(done, fallback)), flush=True)
    else:
        print(flush=True)
        if (note := finish_note(done)) is not None:
            print(f"tokenglass: {note}", file=sys.stderr)
    if done.dropped_messages:
        print(
            f"tokenglass: {done.dropped_messages} oldest messages were left out to fit the "
            "context window",
            file=sys.stderr,
        )
    return turn


def _check(turn: _Turn) -> None:
    """Raises EngineError when the reply ended in an error (after it was saved)."""
    if turn.done.finish_reason == "error":
        raise EngineError(turn.done.error or "generation failed")


class _Saver:
    """Saves each CLI turn into the history database, unless --no-save."""

    def __init__(self, model_name: str, enabled: bool) -> None:
        from desktop.history import History

        self.model_name = model_name
        self.conv_id: int | None = None
        self.history = History() if enabled else None
        if self.history is not None and self.history.notice:
            print(f"tokenglass: {self.history.notice}", file=sys.stderr)

    def save(self, user_text: str, turn: _Turn) -> None:
        from desktop.history import save_cli_turn

        if self.history is not None:
            self.conv_id = save_cli_turn(
                self.history,
                self.conv_id,
                user_text,
                turn.done,
                turn.steps,
                self.model_name,
                turn.prompt,
                turn.phases,
            )

    def close(self) -> None:
        if self.history is not None:
            self.history.close()


def run_chat(args: argparse.Namespace) -> int:
    from desktop.engine.events import Message

    model = _load(args)
    if model.template_note:
        print(f"tokenglass: {model.template_note}", file=sys.stderr)
    settings = _settings(model, args)
    history = [Message("system", args.system)] if args.system else []
    saver = _Saver(model.name, enabled=not args.no_save)
    try:
        if args.message is not None:
            turn = _reply(model, [*history, Message("user", args.message)], settings, args.json)
            saver.save(args.message, turn)
            _check(turn)
            return 130 if turn.done.finish_reason == "cancelled" else 0  # 130: ended by SIGINT
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                print("> ", end="", file=sys.stderr, flush=True)
            try:
                line = sys.stdin.readline()
            except KeyboardInterrupt:  # Ctrl-C at the prompt ends the session
                line, code = "", 130
            else:
                code = 0
            if not line:  # end of input (Ctrl-D) or Ctrl-C at the prompt
                if interactive:
                    print(file=sys.stderr)  # the shell's prompt starts on its own line
                return code
            if not line.strip():
                continue
            text = well_formed(line.rstrip("\n"))
            history.append(Message("user", text))
            turn = _reply(model, history, settings, args.json)
            saver.save(text, turn)
            _check(turn)
            history.append(Message("assistant", turn.done.text))
    finally:
        saver.close()


def run_tokenize(args: argparse.Namespace) -> int:
    model = _load(args)
    pieces = model.tokenize(args.text)
    if args.json:
        rows = [
            {
                "id": p.id,
                "token": p.token,
                "bytes": list(p.bytes),
                "start": p.start,
                "end": p.end,
                "special": p.special,
            }
            for p in pieces
        ]
        out = {"model": model.name, "count": len(rows), "tokens": rows}
        print(json.dumps(out, ensure_ascii=False))
        return 0
    for p in pieces:
        hex_bytes = p.bytes.hex(" ").upper()
        print(f"{p.id:>7}  {p.token!r:<20} [{p.start}:{p.end}]  {hex_bytes}")
    print(f"{len(pieces)} token" + ("" if len(pieces) == 1 else "s"), file=sys.stderr)
    return 0


def run_models(args: argparse.Namespace) -> int:
    models = list_models()
    if args.json:
        rows = [{**dataclasses.asdict(m), "path": str(m.path)} for m in models]
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not models:
        print("no models installed; build the default one with `make model`", file=sys.stderr)
        return 0
    for m in models:
        size = f"{m.size_bytes / 1e6:.1f} MB"
        print(f"{m.name:<32} {m.family:<10} {m.precision:<6} {m.kind:<16} {size:>10}  {m.path}")
    return 0
