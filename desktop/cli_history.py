"""`tokenglass history [--json] [--search TEXT]` and `tokenglass export ID --format json|md`.

Reads the chat history database (desktop/history.py); a notice about an unusable database goes to
stderr, the listing or the export to stdout (or to --out FILE). Errors are HistoryError, turned
into one line by desktop/cli.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from desktop.history import ConversationSummary, History, HistoryError
from desktop.history_export import conversation_json, export_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `history` and `export` subcommands."""
    listing = subparsers.add_parser("history", help="list saved conversations")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--search", metavar="TEXT", help="only conversations containing TEXT")
    listing.set_defaults(func=run_history)

    export = subparsers.add_parser(
        "export", help="write one saved conversation as JSON or Markdown"
    )
    export.add_argument("id", type=int, metavar="ID", help="conversation id (see `history`)")
    export.add_argument("--format", choices=("json", "md"), required=True)
    export.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")
    export.set_defaults(func=run_export)


def _open() -> History:
    history = History()
    if history.notice:
        print(f"tokenglass: {history.notice}", file=sys.stderr)
    return history


def run_history(args: argparse.Namespace) -> int:
    with _open() as history:
        conversations = history.list_conversations(search=args.search)
    if args.json:
        print(json.dumps([_summary_json(c) for c in conversations], ensure_ascii=False, indent=2))
        return 0
    if not conversations:
        print("No saved conversations." if not args.search else f"Nothing matches {args.search!r}.")
        return 0
    print(f"{'ID':>5}  {'UPDATED':16}  {'MSGS':>4}  {'MODEL':24}  TITLE")
    for c in conversations:
        updated = c.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")
        print(f"{c.id:>5}  {updated:16}  {c.message_count:>4}  {c.model[:24]:24}  {c.title}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    with _open() as history:
        text = export_text(history, args.id, args.format)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise HistoryError(f"Could not write {args.out}: {err.strerror or err}.") from err
    print(f"Wrote conversation {args.id} to {args.out}.", file=sys.stderr)
    return 0


def _summary_json(summary: ConversationSummary) -> dict:
    data = conversation_json(summary, [])
    del data["messages"], data["tree"], data["format"], data["version"]
    data["message_count"] = summary.message_count
    return data
