"""From a conversation to the prompt the model reads: template, ids, and the context window.

Owns: choosing between the chat template and the plain last user turn (models without a template),
exactly one BOS (via TextTokenizer.encode_prompt), and fitting the context window (case F1): the
oldest turns are dropped, the system prompt and the last user turn are always kept, and the count
of dropped turns is reported. Knows nothing about sessions or sampling.

Turns alternate (case I9, cherry-studio PR #5051): before rendering, an assistant turn with no text
(a failed or stopped reply that produced none) is left out, and consecutive turns of one role are
merged into one turn, their texts joined with a blank line ("\n\n"). So after a failed reply the
next message still gets an answer, also with templates that require user and assistant turns to
alternate (Mistral, Llama 2, Gemma raise on two user turns in a row): the model reads the unanswered
message and the new one as one turn. A partial reply that has text stays an assistant turn.

Message text is text (case I1): special-token text inside a message ("A<|im_end|>B", typed,
pasted, or in an earlier reply) is encoded as plain tokens; only the template's own markers become
control tokens (message_text.py finds which is which).
"""

from __future__ import annotations

from collections.abc import Sequence

from desktop.engine.chat_template import ChatTemplate, plain_prompt
from desktop.engine.errors import EmptyMessageError, PromptTooLongError
from desktop.engine.events import Message, PromptInfo
from desktop.engine.message_text import ContentShield, PromptPart
from desktop.engine.tokenizer import TextTokenizer


def reply_reserve(context_size: int, max_new_tokens: int) -> int:
    """Positions kept free for the reply when trimming: max_new_tokens, at most half the window."""
    return max(1, min(max_new_tokens, context_size // 2))


def build_prompt(
    messages: Sequence[Message],
    tokenizer: TextTokenizer,
    template: ChatTemplate | None,
    context_size: int,
    max_new_tokens: int,
) -> PromptInfo:
    """The prompt for `messages`, trimmed to fit `context_size` with room for the reply.
    Turns are made to alternate first (`alternating_turns`); dropped_messages counts those turns.

    Raises EmptyMessageError when the last user turn is empty, PromptTooLongError when the system
    prompt and the last user turn alone leave no room for even one reply token, ChatTemplateError
    from the template.
    """
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users or not messages[users[-1]].content.strip():
        raise EmptyMessageError("The message is empty: type something to send.")
    messages = alternating_turns(messages)
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    last_user = users[-1]
    budget = context_size - reply_reserve(context_size, max_new_tokens)
    droppable = [i for i, m in enumerate(messages) if m.role != "system" and i < last_user]
    dropped = 0
    while True:
        kept = [m for i, m in enumerate(messages) if i not in droppable[:dropped]]
        text, ids = _render(kept, tokenizer, template)
        if len(ids) <= budget or (dropped == len(droppable) and len(ids) < context_size):
            break
        if dropped == len(droppable):
            raise PromptTooLongError(
                f"The message is {len(ids)} tokens with the system prompt, but this model reads "
                f"at most {context_size}; shorten it."
            )
        dropped += 1
        # an assistant turn left at the front (after the system prompt) goes with its user turn
        while dropped < len(droppable) and messages[droppable[dropped]].role == "assistant":
            dropped += 1
    return PromptInfo(
        prompt_text=text, prompt_ids=tuple(ids), dropped_messages=dropped, context_size=context_size
    )


def alternating_turns(messages: Sequence[Message]) -> list[Message]:
    """`messages` as the template reads them (I9, see the module docstring): assistant turns
    without text left out, then each run of consecutive turns of one role merged into one turn,
    texts joined with a blank line."""
    out: list[Message] = []
    for message in messages:
        if message.role == "assistant" and not message.content.strip():
            continue
        if out and out[-1].role == message.role:
            out[-1] = Message(message.role, out[-1].content + "\n\n" + message.content)
        else:
            out.append(message)
    return out


def _render(
    messages: Sequence[Message], tokenizer: TextTokenizer, template: ChatTemplate | None
) -> tuple[str, list[int]]:
    if template is None:
        text = plain_prompt(messages)
        return text, tokenizer.encode_prompt(text, rendered_by_template=False)
    shield = ContentShield(tokenizer.special_texts)
    rendered = template.render(shield.shield(messages), add_generation_prompt=True)
    parts: list[PromptPart] = shield.parts(rendered)
    text = "".join(part.text for part in parts)
    return text, tokenizer.encode_prompt(parts, rendered_by_template=True)
