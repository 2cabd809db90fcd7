"""The headless CLI: `tokenglass chat|tokenize|models|history|export ...`.

Each subcommand lives in its own module with `register(subparsers)`; this module only dispatches
and turns an `EngineError` (or `HistoryError`) into one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
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

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EngineError as err:
        print(f"tokenglass: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
