"""`tokenglass branch CONVERSATION_ID --message MESSAGE_ID --at INDEX --token TOKEN_ID`: continue
a saved reply from one of its tokens with another token ("what if the model had picked that
one?").

The new reply keeps the original's tokens before INDEX (0-based), puts TOKEN_ID at INDEX, and goes
on sampling with the original reply's settings (any generation option given on the line replaces
that value), after the chat's saved system prompt (--system replaces it for this run); it is printed
as `chat` prints a reply (JSON Lines with --json, the picked token's record with `"picked": true`,
the ones before it `"forced": true`) and saved as a new version of the original (same parent), made
active. The model is the original reply's unless --model names another (token ids belong to one
vocabulary). A conversation, message, index or token id that is not there is a `UsageError` (one
line, exit 2) found before anything runs or is saved. Runs through the ChatService, as every
generation does.
"""

from __future__ import annotations

import argparse
import sys

from desktop.cli_chat import UsageError, _load, _model_args, _settings, generation_args


def register(subparsers: argparse._SubParsersAction) -> None:
    branch = subparsers.add_parser(
        "branch",
        help="continue a saved reply from one of its tokens, with another token in its place",
    )
    branch.add_argument("conversation_id", type=int, metavar="CONVERSATION_ID")
    branch.add_argument(
        "--message", type=int, required=True, metavar="MESSAGE_ID", help="the reply's message id"
    )
    branch.add_argument(
        "--at", type=int, required=True, metavar="INDEX", help="0-based index of the token"
    )
    branch.add_argument(
        "--token", type=int, required=True, metavar="TOKEN_ID", help="the token id to put there"
    )
    _model_args(branch)
    branch.add_argument(
        "--system", help="system prompt (default: the one saved with the conversation)"
    )
    generation_args(branch)
    branch.add_argument("--json", action="store_true", help="JSON Lines: one object per token")
    branch.set_defaults(func=run_branch)


def run_branch(args: argparse.Namespace) -> int:
    from desktop.chat_service import ChatService, RunRequest
    from desktop.cli_reply import record_turn, saving, stream_reply
    from desktop.history import History

    with History() as history:
        if history.notice:
            print(f"tokenglass: {history.notice}", file=sys.stderr)
        conversation, reply = _find_reply(history, args.conversation_id, args.message)
        if args.system is not None:
            conversation.system_prompt = args.system
        if not 0 <= args.at < len(reply.steps):
            raise UsageError(
                f"Token index {args.at} is outside message {args.message}'s reply "
                f"(0..{len(reply.steps) - 1})."
            )
        model = _load(args, reply.model)
        vocab = model.tokenizer.vocab_size
        if not 0 <= args.token < vocab:
            raise UsageError(
                f"Token id {args.token} is not in {model.name}'s vocabulary (0..{vocab - 1})."
            )
        base = reply.done.settings if reply.done is not None else None
        settings = _settings(model, args, base)
        new, forced = conversation.branch(reply, args.at, args.token, model.name)
        messages = conversation.messages(until=reply.parent)
        _warn_if_the_prompt_differs(model, messages, settings, forced, reply)
        request = RunRequest(tuple(messages), settings, forced_ids=forced, label="cli")
        finish = saving(history, conversation, None, new, model.name)
        service = ChatService(model)
        try:
            turn = stream_reply(service, request, args.json, finish, model.provider.fallback_reason)
        finally:
            service.close()
        record_turn(conversation, None, new, turn)
    if turn.done.finish_reason == "error":
        from desktop.engine.errors import EngineError

        raise EngineError(turn.done.error or "generation failed")
    return 130 if turn.done.finish_reason == "cancelled" else 0


def _find_reply(history, conv_id: int, message_id: int):
    """(the saved conversation, the reply node with `message_id`). Raises UsageError."""
    from desktop.conversation_store import load_conversation
    from desktop.history import HistoryError

    try:
        conversation = load_conversation(history, conv_id)
    except HistoryError as err:
        raise UsageError(str(err)) from err
    node = next((n for n in conversation.nodes() if n.message_id == message_id), None)
    if node is None:
        raise UsageError(f"Conversation {conv_id} has no message with id {message_id}.")
    if node.role != "assistant":
        raise UsageError(
            f"Message {message_id} is a {node.role} message; only a reply can be continued "
            "from one of its tokens."
        )
    if not node.steps:
        raise UsageError(f"Message {message_id} has no tokens to continue from.")
    return conversation, node


def _warn_if_the_prompt_differs(model, messages, settings, forced, reply) -> None:
    """The kept tokens' records equal the original's only when the model reads the same prompt:
    say so on stderr when it will not (another system prompt, model or template)."""
    if reply.prompt is None:
        return
    prompt = model.render_prompt(messages, settings.max_new_tokens + len(forced))
    if prompt.prompt_ids != reply.prompt.prompt_ids:
        print(
            "tokenglass: the prompt differs from the one the original reply read (another "
            "system prompt or model?), so the kept tokens may score differently",
            file=sys.stderr,
        )
