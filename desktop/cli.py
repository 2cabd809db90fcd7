"""The headless CLI: `tokenglass chat|branch|tokenize|models|history|export|serve ...`.

Each subcommand lives in its own module with `register(subparsers)`; this module only dispatches
and turns an `EngineError` (or `HistoryError`) into one clear line on stderr and a non-zero exit:
the error's `exit_code` where it has one, else 1 (with `--json`, also one `{"type": "error",
"message": ...}` object on stdout). A reader that stops early (`tokenglass chat --json Hi | head
-c 100`) ends the command quietly with exit status 141 (128 + SIGPIPE, as a shell reports a
command killed by SIGPIPE), never a traceback.
A stdout that cannot carry every character (cp1252 when redirected on Windows,
PYTHONIOENCODING=ascii) gets what it can and `\\uXXXX` escapes for the rest, which stay valid
JSON inside `--json` strings (case I10); nothing is lost and the turn is saved.
"""

from __future__ import annotations

import argparse
import codecs
import importlib
import json
import os
import sys

from desktop import __version__

# subcommand name -> module that registers it (modules are imported lazily, so `tokenglass models`
# does not pay for what `tokenglass chat` needs).
SUBCOMMANDS: dict[str, str] = {
    "chat": "desktop.cli_chat",
    "branch": "desktop.cli_branch",
    "tokenize": "desktop.cli_chat",
    "models": "desktop.cli_chat",
    "history": "desktop.cli_history",
    "export": "desktop.cli_history",
    "serve": "desktop.server.command",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenglass", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tokenglass {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in dict.fromkeys(SUBCOMMANDS.values()):
        importlib.import_module(module_name).register(subparsers)
    return parser


ESCAPE_ERRORS = "tokenglass-escape"


def _escape(err: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each character the encoding lacks becomes `\\uXXXX` (a UTF-16
    surrogate pair above U+FFFF), as JSON writes it, so a JSON line stays valid JSON."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    units = err.object[err.start : err.end].encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)), err.end


codecs.register_error(ESCAPE_ERRORS, _escape)


def escape_what_stdout_cannot_carry() -> None:
    """Make stdout and stderr escape (never fail on) characters their encoding cannot carry."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        reconfigure = getattr(stream, "reconfigure", None)
        if encoding not in ("utf8", "utf8sig") and reconfigure is not None:
            reconfigure(errors=ESCAPE_ERRORS)


def main(argv: list[str]) -> int:
    from desktop.engine.errors import EngineError
    from desktop.engine.tokenizer import well_formed

    escape_what_stdout_cannot_carry()
    args = build_parser().parse_args(argv)
    for name in ("message", "system", "text"):  # text for the model, not paths (kept as given)
        if isinstance(getattr(args, name, None), str):
            setattr(args, name, well_formed(getattr(args, name)))
    if getattr(args, "stop", None):
        args.stop = [well_formed(s) for s in args.stop]
    try:
        try:
            code = int(args.func(args) or 0)
        except EngineError as err:
            print(f"tokenglass: {err}", file=sys.stderr)
            if getattr(args, "json", False):
                print(json.dumps({"type": "error", "message": str(err)}, ensure_ascii=False))
            code = getattr(err, "exit_code", 1)  # 2 for a UsageError (a bad id or index)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        silence_stdout()
        return 141


def silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's final flush does not fail again (the recipe
    in Python's `signal` documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (e.g. captured in tests)
        pass
