"""The headless CLI: `tokenglass chat|tokenize|models|history|export|serve|inspect ...`.

Each subcommand lives in its own module with `register(subparsers)`; this module only dispatches
and turns an `EngineError` (or `HistoryError`) into one clear line on stderr and a non-zero exit
(with `--json`, also one `{"type": "error", "message": ...}` object on stdout). A reader that
stops early (`tokenglass chat --json Hi | head -c 100`) ends the command quietly with exit status
141 (128 + SIGPIPE, as a shell reports a command killed by SIGPIPE), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from desktop import __version__

# subcommand name -> module that registers it (modules are imported lazily, so `tokenglass models`
# does not pay for what `tokenglass chat` needs).
SUBCOMMANDS: dict[str, str] = {
    "chat": "desktop.cli_chat",
    "tokenize": "desktop.cli_chat",
    "models": "desktop.cli_chat",
    "history": "desktop.cli_history",
    "export": "desktop.cli_history",
    "serve": "desktop.server.command",
    "inspect": "desktop.cli_inspect",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenglass", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tokenglass {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in dict.fromkeys(SUBCOMMANDS.values()):
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str]) -> int:
    from desktop.engine.errors import EngineError
    from desktop.engine.tokenizer import well_formed

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
            code = 1
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
