"""`tokenglass chat | tokenize | models`: the engine from a terminal.

`chat` streams a reply (or JSON Lines: one object per token in OpenAI's logprobs shape plus our
fields, then one `"type": "done"` object; desktop/cli_reply.py); without a MESSAGE it reads turns
from stdin. The turns form a `Conversation` (desktop/conversation.py) and run through the
`ChatService`, as the window's and the server's do; `--continue ID` goes on from a saved
conversation's active path, with the system prompt and sampling settings saved with it (options
given on the line replace them, for this turn and the chat's next ones). `tokenize` shows a text's
tokens with ids and byte spans; `models` lists installed models. Errors are `EngineError`s, turned
into one line on stderr by desktop/cli.py (a `UsageError`, e.g. an unknown conversation id, exits
2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys

from desktop.cli_reply import done_json, finish_note, phase_json, token_json  # noqa: F401 (their old home)
from desktop.engine.catalog import build_hint, list_models, resolve_model
from desktop.engine.errors import EngineError
from desktop.engine.events import SETTING_RANGES, SettingRange
from desktop.engine.tokenizer import well_formed

PROVIDERS = ("auto", "cpu", "cuda", "dml", "coreml")


class UsageError(EngineError):
    """A command names something that is not there (a conversation, a message, a token index or
    id): one line on stderr, exit status 2 (as argparse exits for a bad argument), nothing saved."""

    exit_code = 2


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
    return in_range(SettingRange(kind, low, high, above))


def in_range(allowed: SettingRange):
    """An argparse `type` that accepts what `allowed` accepts (the engine's own check)."""
    kind = allowed.kind

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if not allowed.allows(value):
            raise argparse.ArgumentTypeError(f"must be {allowed.rule()}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def setting(name: str):
    """The argparse `type` of generation setting `name`: the range GenerationSettings checks."""
    return in_range(SETTING_RANGES[name])


def _rule(name: str) -> str:
    return SETTING_RANGES[name].rule()


def register(subparsers: argparse._SubParsersAction) -> None:
    chat = subparsers.add_parser("chat", help="chat with a model in the terminal")
    chat.add_argument("message", nargs="?", help="one message; without it, read turns from stdin")
    chat.add_argument(
        "--continue",
        dest="continue_id",
        type=int,
        metavar="CONVERSATION_ID",
        help="add the turns to this saved conversation's active path (see `tokenglass history`)",
    )
    _model_args(chat)
    chat.add_argument(
        "--system", help="system prompt (with --continue: replaces the chat's saved one)"
    )
    generation_args(chat)
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


def generation_args(chat: argparse.ArgumentParser) -> None:
    """The sampling options (`chat`, `branch`); unset ones keep the model's or reply's values."""
    chat.add_argument(
        "--max-new-tokens", type=setting("max_new_tokens"), help=_rule("max_new_tokens")
    )
    chat.add_argument(
        "--temperature",
        type=setting("temperature"),
        help=f"{_rule('temperature')}; 0 = greedy: the most likely token after the repetition "
        "penalty (as in llama.cpp and transformers; --repetition-penalty 1 for the model's own "
        "argmax)",
    )
    chat.add_argument("--top-k", type=setting("top_k"), help=f"{_rule('top_k')}; 0 = off")
    chat.add_argument(
        "--top-p",
        type=setting("top_p"),
        help=f"{_rule('top_p')}; 1 = off, 0 keeps only the most likely token",
    )
    chat.add_argument("--min-p", type=setting("min_p"), help=f"{_rule('min_p')}; 0 = off")
    chat.add_argument(
        "--repetition-penalty",
        type=setting("repetition_penalty"),
        help=f"{_rule('repetition_penalty')}; 1 = off",
    )
    chat.add_argument(
        "--seed", type=setting("seed"), help=f"{_rule('seed')}; reproduces a reply exactly"
    )
    chat.add_argument(
        "--stop",
        action="append",
        default=[],
        type=stop_string,
        help="stop string (repeatable); \\n, \\t and \\\\ are newline, tab and backslash",
    )
    chat.add_argument(
        "--top-logprobs",
        type=setting("top_logprobs"),
        help=f"alternatives per token, {_rule('top_logprobs')}",
    )


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="installed model name or model folder (default model)")
    parser.add_argument("--provider", choices=PROVIDERS, default="auto")
    parser.add_argument(
        "--threads", type=number(int, 1), help="intra-op threads, >= 1 (default: up to 4)"
    )


def _load(args: argparse.Namespace, saved_model: str | None = None):
    """The model `--model` names, else `saved_model` (the model a saved conversation or reply
    was made with), else the default model."""
    from desktop.engine.chat import load_model  # onnxruntime is imported only here

    folder = resolve_model(args.model or saved_model)
    model = load_model(folder, provider=args.provider, threads=args.threads)
    if model.provider.fallback_reason:
        print(f"tokenglass: {model.provider.fallback_reason}", file=sys.stderr)
    return model


def _settings(model, args: argparse.Namespace, base=None):
    """GenerationSettings: `base` (default: the model's) with the options given on the line."""
    base = model.default_settings() if base is None else base
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


def run_chat(args: argparse.Namespace) -> int:
    from desktop.chat_service import ChatService

    store, conversation = _open_chat(args)
    try:
        model = _load(args, _saved_model(store, args.continue_id))
        if model.template_note:
            print(f"tokenglass: {model.template_note}", file=sys.stderr)
        history = store if not args.no_save else None
        settings = _chat_settings(model, args, conversation, history)
        service = ChatService(model)
        try:
            if args.message is not None:
                turn = _chat_turn(
                    service, model, history, conversation, args.message, settings, args
                )
                return 130 if turn.done.finish_reason == "cancelled" else 0  # 130: SIGINT
            return _chat_stdin(service, model, history, conversation, settings, args)
        finally:
            service.close()
    finally:
        if store is not None:
            store.close()


def _open_chat(args: argparse.Namespace):
    """(the history or None, the conversation): a new one, or the saved one `--continue` names
    (UsageError when there is none)."""
    from desktop.conversation import Conversation
    from desktop.conversation_store import load_conversation
    from desktop.history import History, HistoryError

    store = History() if not args.no_save or args.continue_id is not None else None
    if store is not None and store.notice:
        print(f"tokenglass: {store.notice}", file=sys.stderr)
    if args.continue_id is None:
        return store, Conversation(args.system or "")
    assert store is not None
    try:
        return store, load_conversation(store, args.continue_id, args.system)
    except HistoryError as err:
        store.close()
        raise UsageError(str(err)) from err


def _chat_settings(model, args: argparse.Namespace, conversation, history):
    """The sampling settings of this run's turns: the conversation's own (saved with it; a new
    chat, or one saved without any: the model's defaults) with the options given on the line.
    The conversation keeps them and its system prompt (--system, else its saved one, else none)
    for its next turns; a saved conversation whose settings this changes has them saved now
    (not with --no-save). Raises HistoryError."""
    from desktop.conversation import ChatSettings
    from desktop.conversation_store import save_settings

    saved = conversation.settings
    generation = _settings(model, args, saved.generation)
    system = args.system if args.system is not None else (saved.system_prompt or "")
    conversation.set_settings(ChatSettings(system, generation))
    if history is not None and conversation.settings != saved:
        save_settings(history, conversation)
    return generation


def _saved_model(store, conv_id: int | None) -> str | None:
    return store.conversation(conv_id).model if store is not None and conv_id is not None else None


def _chat_turn(service, model, history, conversation, text: str, settings, args):
    """One user turn at the end of the active path and its reply, streamed and saved. Raises the
    engine's refusal (the turn then leaves the conversation), or EngineError when the reply
    ended in an error (after it was saved)."""
    from desktop.chat_service import RunRequest
    from desktop.cli_reply import record_turn, saving, stream_reply

    user = conversation.add_user(text)
    reply = conversation.add_reply(user, model.name)
    request = RunRequest(tuple(conversation.messages(until=user)), settings, label="cli")
    finish = saving(history, conversation, user, reply, model.name)
    try:
        turn = stream_reply(service, request, args.json, finish, model.provider.fallback_reason)
    except EngineError:
        conversation.remove(user)
        raise
    record_turn(conversation, user, reply, turn)
    if turn.done.finish_reason == "error":
        raise EngineError(turn.done.error or "generation failed")
    return turn


def _chat_stdin(service, model, history, conversation, settings, args) -> int:
    """Turns read from stdin until its end (Ctrl-D) or Ctrl-C at the prompt (exit 130)."""
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
        _chat_turn(service, model, history, conversation, text, settings, args)


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
        print(f"no models installed; {build_hint()}", file=sys.stderr)
        return 0
    for m in models:
        size = f"{m.size_bytes / 1e6:.1f} MB"
        print(f"{m.name:<32} {m.family:<10} {m.precision:<6} {m.kind:<16} {size:>10}  {m.path}")
    return 0
