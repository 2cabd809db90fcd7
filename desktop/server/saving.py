"""Chats through the server, saved in the history as the window's are (unless --no-save).

A client sends the whole conversation with every request. A request whose earlier turns are a
conversation this server saved (the same turns, the last reply as the client got it back)
continues that conversation; any other starts a new one, titled after its last user message.
Only what passed through this server is saved: the last user message and the reply with its
token records. Earlier turns a client sends from elsewhere are not ours and carry no records.
Completions (raw prompts) are not chats and are not saved.
`save_turn` is the one function that writes to the history.

Runs on the chat service's thread (a request's `finish`), one run at a time, so the map of
conversations needs no lock. Does not know: HTTP, response shapes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from desktop.chat_service import RunResult
from desktop.engine.events import Message
from desktop.history import History, save_cli_turn

KEEP_CONVERSATIONS = 256
"""Conversations remembered for continuing (the oldest is forgotten first)."""

_Key = tuple[tuple[str, str], ...]


def save_turn(
    history: History,
    conv_id: int | None,
    user_text: str,
    result: RunResult,
    model: str,
    system_prompt: str = "",
) -> int:
    """Save one turn: the user's message and the reply with its token records and prompt.
    conv_id None starts a conversation, kept with `system_prompt` (the request's system
    messages) and the reply's settings. Returns the conversation id. Raises HistoryError."""
    assert result.done is not None
    return save_cli_turn(
        history,
        conv_id,
        user_text,
        result.done,
        result.steps,
        model,
        prompt=result.prompt,
        system_prompt=system_prompt,
    )


class ChatSaver:
    """Gives each chat request a `finish` that saves its turn (see the module docstring)."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._conversations: OrderedDict[_Key, int] = OrderedDict()

    def finish_for(
        self, messages: Sequence[Message], model: str
    ) -> Callable[[RunResult], int | None]:
        """The `finish` of a chat request: returns the conversation id, or None when nothing
        was saved (the engine refused the request, it was cancelled before its first token,
        or its last message is not the user's)."""

        def finish(result: RunResult) -> int | None:
            done = result.done
            if done is None or messages[-1].role != "user":
                return None
            if done.completion_tokens == 0 and done.finish_reason == "cancelled":
                return None
            conv_id = self._conversations.pop(_key(messages[:-1]), None)
            system = "\n\n".join(m.content for m in messages if m.role == "system")
            conv_id = save_turn(self.history, conv_id, messages[-1].content, result, model, system)
            self._conversations[_key([*messages, Message("assistant", done.text)])] = conv_id
            while len(self._conversations) > KEEP_CONVERSATIONS:
                self._conversations.popitem(last=False)
            return conv_id

        return finish


def _key(messages: Sequence[Message]) -> _Key:
    """A conversation as compared between requests (surrounding white space ignored: some
    clients trim the reply they send back)."""
    return tuple((m.role, m.content.strip()) for m in messages)
