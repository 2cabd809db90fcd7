"""One reply in the terminal, through the ChatService: stream it, save it, print how it ended.

Owns: printing a run's records (the reply's text, or JSON Lines: `"type": "phase"` objects for
the pipeline's phases (tokenize and prefill or encode before the first token, decode after the
last), one `"type": "token"` object per token in OpenAI's logprobs shape plus ours, then one
`"type": "done"` object), Ctrl-C (SIGINT
cancels the run; the reply ends "cancelled" between decode steps), and saving the turn into the
history tree from the service thread when the run ends (the user's message, if new, then the
reply under it). The done object is printed after the save, so it can carry the saved
`conversation_id` and `message_id`. A run the engine refused before its first record (an empty
message, a prompt too long) saves nothing and raises its EngineError.
Does not know: argparse, how a conversation is chosen (desktop/cli_chat.py, desktop/cli_branch.py).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from desktop import openai_json
from desktop.chat_service import ChatService, RunRequest, RunResult
from desktop.conversation import Conversation, Node
from desktop.conversation_store import parent_message_id, stored_branch
from desktop.engine.events import GenerationDone, Phase, PromptInfo, TokenStep
from desktop.history import History, default_title


@dataclass(frozen=True)
class Saved:
    """Where a turn was saved: its conversation, the user's message (None when the turn added
    none: a branch) and the reply."""

    conversation_id: int
    user_id: int | None
    reply_id: int


@dataclass
class Turn:
    """What one reply produced, for printing and for the conversation."""

    done: GenerationDone
    steps: list[TokenStep]
    prompt: PromptInfo | None
    saved: Saved | None


def token_json(step: TokenStep) -> dict:
    """A TokenStep as a JSON line: OpenAI's logprobs entry plus ours (desktop/openai_json.py)."""
    return {"type": "token", **openai_json.token_json(step)}


def phase_json(phase: Phase) -> dict:
    """A pipeline Phase as a JSON line (desktop/openai_json.py builds its fields)."""
    return {"type": "phase", **openai_json.phase_json(phase)}


def done_json(
    done: GenerationDone, provider_fallback_reason: str | None = None, saved: Saved | None = None
) -> dict:
    """A GenerationDone as the last JSON line; `provider_fallback_reason`: why a requested GPU
    execution provider is not in use (ProviderInfo.fallback_reason), or None. `seed` is null for
    a greedy reply (temperature 0), which draws nothing (as the window's reply footer).
    `conversation_id` and `message_id` (the reply's) are there when the turn was saved."""
    fields = openai_json.done_json(done)
    out = {"type": "done", **fields, "provider_fallback_reason": provider_fallback_reason}
    if saved is not None:
        out.update(conversation_id=saved.conversation_id, message_id=saved.reply_id)
    return out


def finish_note(done: GenerationDone) -> str | None:
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


def saving(
    history: History | None,
    conversation: Conversation,
    user: Node | None,
    reply: Node,
    model_name: str,
) -> Callable[[RunResult], Saved | None]:
    """A ChatService `finish` that saves the turn (None: no history, nothing saved). Everything
        it needs from the conversation is read now, on the caller's thread; on the service thread it
        only writes: the conversation row if new (titled after `user`, with the conversation's
    `ChatSettings`), `user` if not saved yet,
        then the reply with the run's records under it (the active version), with its branch point.
        A run the engine refused (no GenerationDone) saves nothing. Raises HistoryError."""
    if history is None:
        return lambda _result: None
    conv_id = conversation.id
    title_text = user.text if user is not None else ""
    user_text = user.text if user is not None and user.message_id is None else None
    user_parent = parent_message_id(conversation, user) if user_text is not None else None
    reply_parent = parent_message_id(conversation, reply) if user_text is None else None
    branch = stored_branch(conversation, reply)
    chat = conversation.settings

    def finish(result: RunResult) -> Saved | None:
        if result.done is None:
            return None
        conv = conv_id
        if conv is None:
            conv = history.create_conversation(
                default_title(title_text), model_name, chat.system_prompt, chat.generation
            )
        parent = reply_parent
        user_id = None
        if user_text is not None:
            user_id = parent = history.add_user_message(conv, user_text, parent_id=user_parent)
        reply_id = history.add_assistant_message(
            conv,
            result.done,
            result.steps,
            model_name,
            result.prompt,
            parent_id=parent,
            branch=branch,
            phases=result.phases,
        )
        return Saved(conv, user_id, reply_id)

    return finish


def stream_reply(
    service: ChatService,
    request: RunRequest,
    as_json: bool,
    finish: Callable[[RunResult], Saved | None],
    provider_fallback_reason: str | None = None,
) -> Turn:
    """Run `request` on `service` and print it as it comes (text, or JSON Lines). Ctrl-C stops
    it between decode steps ("cancelled"); the partial reply is still returned (and saved by
    `finish`), as is one that ended in an error. Raises the engine's EngineError when it refused
    before its first record, and a HistoryError from `finish` after the reply was printed."""
    handle = service.submit(request, finish=finish)
    # Ctrl-C cancels the run instead of raising in the middle of the stream, so the reply still
    # ends with its GenerationDone; the engine checks the flag before each decode step.
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: handle.cancel()) if on_main else None
    steps: list[TokenStep] = []
    prompt = done = None
    try:
        for record in handle:  # ends after the run's `finish` (the save) is over
            if isinstance(record, PromptInfo):
                prompt = record
            elif isinstance(record, TokenStep):
                steps.append(record)
                _print_token(record, as_json)
            elif isinstance(record, Phase):
                if as_json:
                    print(openai_json.dumps(phase_json(record)), flush=True)
            elif isinstance(record, GenerationDone):
                done = record
    finally:
        if on_main:
            signal.signal(signal.SIGINT, previous)
    assert done is not None  # the engine always ends a run it started with one GenerationDone
    saved = handle.finish_value
    if as_json:
        print(openai_json.dumps(done_json(done, provider_fallback_reason, saved)), flush=True)
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
    if handle.finish_error is not None:
        raise handle.finish_error
    return Turn(done, steps, prompt, saved)


def record_turn(conversation: Conversation, user: Node | None, reply: Node, turn: Turn) -> None:
    """Put what a run produced into the conversation (on the caller's thread): the reply's
    records, its end, and the message ids it was saved under."""
    for step in turn.steps:
        conversation.append_step(reply, step)
    conversation.finish(reply, turn.done, turn.prompt)
    if turn.saved is not None:
        conversation.id = turn.saved.conversation_id
        if user is not None and turn.saved.user_id is not None:
            user.message_id = turn.saved.user_id
        reply.message_id = turn.saved.reply_id


def _print_token(step: TokenStep, as_json: bool) -> None:
    if as_json:
        print(openai_json.dumps(token_json(step)), flush=True)
    else:
        sys.stdout.write(step.text)
        sys.stdout.flush()
