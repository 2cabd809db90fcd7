"""`tokenglass serve`: the model behind an OpenAI-compatible API on this machine.

Loads the model, binds the address (127.0.0.1:8080 unless told otherwise; any other address
gets a warning on stderr, as anyone who can reach it can use the model), prints one line with
the base URL on stdout, and serves until Ctrl-C. Starlette and uvicorn are imported only when
the command runs, so other subcommands do not pay for them.
"""

from __future__ import annotations

import argparse
import os
import sys

from desktop.cli_chat import PROVIDERS, number

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
KEY_VARIABLE = "TOKENGLASS_API_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible API with real logprobs",
        description="Serve a model over OpenAI's API: GET /v1/models, POST /v1/chat/completions "
        "and /v1/completions, with logprobs. Point any OpenAI client at the printed base URL.",
    )
    serve.add_argument("--model", help="installed model name or model folder (default model)")
    serve.add_argument("--provider", choices=PROVIDERS, default="auto")
    serve.add_argument(
        "--threads", type=number(int, 1), help="intra-op threads, >= 1 (default: up to 4)"
    )
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})"
    )
    serve.add_argument(
        "--port",
        type=number(int, 0, 65535),
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 = any free port)",
    )
    serve.add_argument(
        "--api-key",
        default=os.environ.get(KEY_VARIABLE) or None,
        help=f"require `Authorization: Bearer KEY` (default: ${KEY_VARIABLE}, else no key)",
    )
    serve.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages from ORIGIN (repeatable; e.g. http://localhost:3000); "
        "no CORS headers without it",
    )
    serve.add_argument(
        "--queue",
        type=number(int, 0),
        default=None,
        help="requests that may wait behind the running one (default 8); more get 503",
    )
    serve.add_argument("--no-save", action="store_true", help="do not save chats in the history")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from desktop.chat_service import DEFAULT_MAX_WAITING, ChatService
    from desktop.engine.catalog import resolve_model
    from desktop.engine.chat import load_model
    from desktop.server.app import create_app
    from desktop.server.runner import base_url, bind, is_loopback, serve_forever

    folder = resolve_model(args.model)
    sock = bind(args.host, args.port)  # before the model loads: a port in use fails at once
    try:
        model = load_model(folder, provider=args.provider, threads=args.threads)
    except BaseException:
        sock.close()
        raise
    if model.provider.fallback_reason:
        print(f"tokenglass: {model.provider.fallback_reason}", file=sys.stderr)
    queue = DEFAULT_MAX_WAITING if args.queue is None else args.queue
    service = ChatService(model, max_waiting=queue)
    history = None
    try:
        history = None if args.no_save else _open_history()
        app = create_app(
            service, api_key=args.api_key, cors_origins=args.cors, saver=_saver(history)
        )
        if not is_loopback(args.host):
            print(
                f"tokenglass: warning: listening on {args.host}: anyone who can reach this "
                "machine can use the model" + ("" if args.api_key else " (no --api-key set)"),
                file=sys.stderr,
            )
        print(f"Serving {model.name} at {base_url(sock)} (Ctrl-C stops)", flush=True)
        serve_forever(app, sock)  # closes the socket when it ends
    finally:
        sock.close()
        service.close()
        model.close()
        if history is not None:
            history.close()
    return 0


def _saver(history):
    if history is None:
        return None
    from desktop.server.saving import ChatSaver

    return ChatSaver(history)


def _open_history():
    from desktop.history import History

    history = History()
    if history.notice:
        print(f"tokenglass: {history.notice}", file=sys.stderr)
    return history
