"""One saved conversation as JSON (per-token logprobs in OpenAI's shape) or as a Markdown chat log.

JSON: `system_prompt` and `settings` are what the chat is run with (null: not recorded, see
desktop/history_migrations.py m004; added in version 2 without a bump, as new keys break no
reader), `messages` is the active path (what the model reads), `tree` every message of every version
with its `parent_id` (null for a first turn), `active`, `version` ({index, count} among the
messages that share its parent) and, for a reply continued from one of its tokens, `branch`
({source_id, index, replaced_id, replaced_token, picked_id}). Each assistant message carries
`logprobs.content[]`, one entry per token, in the shape of OpenAI's Chat Completions
`choices[].logprobs.content[]` plus Tokenglass's own fields, as desktop/openai_json.py builds it
(non-finite numbers as null: strict JSON, RFC 8259). Markdown: the chat's system prompt and
settings under the title, then the active path; a message with
other versions says which it is ("version 2 of 3"), a branched reply where it was branched.
`export_text` is the one export behind `tokenglass export` and the window's chat menu (the same
text for the same chat). Does not know: SQLite (it reads `StoredMessage`s through `History`),
files, the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from desktop.history import ConversationSummary, History, StoredMessage
from desktop.openai_json import dumps, phase_json, settings_json, token_json
from desktop.openai_json import number as _num

EXPORT_FORMAT = "tokenglass.conversation"
EXPORT_VERSION = 2  # 2: `tree` added (version 1 had only `messages`)


def message_json(message: StoredMessage) -> dict:
    """One message: {id, role, content, created_at} and, for a reply, the generation's record."""
    out: dict = {
        "id": message.id,
        "role": message.role,
        "content": message.text,
        "created_at": message.created_at.isoformat(),
    }
    if message.done is None:
        return out
    done = message.done
    settings = settings_json(done.settings)
    out.update(
        model=message.model,
        partial=message.partial,
        finish_reason=done.finish_reason,
        error=done.error,
        seed=done.seed_used,
        provider=done.provider,
        settings=settings,
        usage={"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens},
        timings={
            "ttft_ms": _num(done.ttft_ms),
            "decode_tokens_per_s": _num(done.decode_tokens_per_s),
        },
        dropped_messages=done.dropped_messages,
        phases=[phase_json(phase) for phase in message.phases],
        logprobs={"content": [token_json(step) for step in message.steps]},
    )
    return out


def tree_json(tree: Sequence[StoredMessage]) -> list[dict]:
    """Every message (`History.tree`'s order) as `message_json` plus its place in the tree."""
    versions = _versions(tree)
    out = []
    for message in tree:
        entry = message_json(message)
        index, count = versions[message.id]
        entry.update(
            parent_id=message.parent_id,
            active=message.active,
            version={"index": index, "count": count},
        )
        if message.branch is not None:
            entry["branch"] = {
                "source_id": message.branch.source_id,
                "index": message.branch.index,
                "replaced_id": message.branch.replaced_id,
                "replaced_token": message.branch.replaced_token,
                "picked_id": message.branch.picked_id,
            }
        out.append(entry)
    return out


def conversation_json(
    summary: ConversationSummary,
    messages: list[StoredMessage],
    tree: Sequence[StoredMessage] | None = None,
) -> dict:
    """The whole conversation as a JSON-ready dict (see the module docstring). tree: every
    version (`History.tree`); None: the active path is the whole tree (a chat without
    versions)."""
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "id": summary.id,
        "title": summary.title,
        "model": summary.model,
        "created_at": summary.created_at.isoformat(),
        "updated_at": summary.updated_at.isoformat(),
        "system_prompt": summary.system_prompt,
        "settings": settings_json(summary.settings) if summary.settings is not None else None,
        "messages": [message_json(m) for m in messages],
        "tree": tree_json(messages if tree is None else tree),
    }


ExportFormat = Literal["json", "md"]


def export_text(history: History, conv_id: int, fmt: ExportFormat) -> str:
    """Conversation `conv_id` as the text `tokenglass export ID --format json|md` writes: strict
    JSON (`to_json`) with a final newline, or Markdown (`to_markdown`). Raises HistoryError
    (no such conversation, an unreadable database)."""
    summary = history.conversation(conv_id)
    messages = history.messages(conv_id)
    tree = history.tree(conv_id)
    if fmt == "json":
        return to_json(summary, messages, tree) + "\n"
    return to_markdown(summary, messages, tree)


def to_json(
    summary: ConversationSummary,
    messages: list[StoredMessage],
    tree: Sequence[StoredMessage] | None = None,
) -> str:
    """Strict JSON text (UTF-8 characters kept as they are, 2-space indent)."""
    return dumps(conversation_json(summary, messages, tree), indent=2)


def to_markdown(
    summary: ConversationSummary,
    messages: list[StoredMessage],
    tree: Sequence[StoredMessage] | None = None,
) -> str:
    """A readable transcript of the active path: a heading per message (with "version 2 of 3"
    when it has other versions in `tree`), the text as written, and under each reply one line
    of facts (tokens, TTFT, tokens/s, seed, provider, sampling settings)."""
    versions = _versions(messages if tree is None else tree)
    by_id = {m.id: m for m in (messages if tree is None else tree)}
    lines = [
        f"# {summary.title}",
        "",
        f"Model: {summary.model} · started {_local(summary.created_at)} · {len(messages)} messages",
        "",
        *chat_settings_lines(summary),
    ]
    for message in messages:
        heading = {"user": "You", "assistant": "Assistant", "system": "System"}[message.role]
        if message.role == "assistant" and message.model:
            heading += f" ({message.model})"
        heading += f" · {_local(message.created_at)}"
        index, count = versions.get(message.id, (1, 1))
        if count > 1:
            heading += f" · version {index} of {count}"
        lines += [f"## {heading}", "", message.text.rstrip(), ""]
        if message.branch is not None:
            lines += [f"*{_branch_note(message, by_id, versions)}*", ""]
        if message.done is not None:
            lines += [f"*{_facts(message)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def chat_settings_lines(summary: ConversationSummary) -> list[str]:
    """The Markdown lines (a blank line after each part) that say what the chat is run with:
    its system prompt as a quote, and its sampling settings; a part not recorded is left out."""
    lines = []
    if summary.system_prompt is not None:
        prompt = summary.system_prompt.strip()
        if prompt:
            quoted = [f"> {line}".rstrip() for line in prompt.splitlines()]
            lines += ["System prompt:", "", *quoted, ""]
        else:
            lines += ["System prompt: none", ""]
    s = summary.settings
    if s is not None:
        seed = "random" if s.seed is None else str(s.seed)
        lines += [
            f"Settings: temperature {s.temperature:g}, top-k {s.top_k}, top-p {s.top_p:g}, "
            f"min-p {s.min_p:g}, repetition penalty {s.repetition_penalty:g}, "
            f"max new tokens {s.max_new_tokens}, seed {seed}",
            "",
        ]
    return lines


def _versions(tree: Sequence[StoredMessage]) -> dict[int, tuple[int, int]]:
    """message id -> (1-based position among the messages that share its parent, their count),
    oldest first."""
    siblings: dict[int | None, list[int]] = {}
    for message in tree:
        siblings.setdefault(message.parent_id, []).append(message.id)
    return {
        message_id: (position + 1, len(group))
        for group in siblings.values()
        for position, message_id in enumerate(sorted(group))
    }


def _branch_note(
    message: StoredMessage,
    by_id: dict[int, StoredMessage],
    versions: dict[int, tuple[int, int]],
) -> str:
    """Where a reply was continued from a token, e.g. 'continued from version 1 at token 5:
    "Paris" replaced by " Lyon"'."""
    branch = message.branch
    assert branch is not None
    steps = message.steps
    picked = steps[branch.index].token if branch.index < len(steps) else f"id {branch.picked_id}"
    source = by_id.get(branch.source_id) if branch.source_id is not None else None
    origin = f"version {versions[source.id][0]}" if source is not None else "a deleted version"
    return (
        f"continued from {origin} at token {branch.index}: "
        f'"{branch.replaced_token}" replaced by "{picked}"'
    )


def _facts(message: StoredMessage) -> str:
    """The line under a reply, as the window's footer words it (seed only when one was drawn;
    for a greedy reply only the settings that still act on it)."""
    done = message.done
    assert done is not None
    if done.completion_tokens == 0 and (done.finish_reason == "cancelled" or message.partial):
        return f"stopped before the first token · {done.provider}"
    s = done.settings
    greedy = s.temperature <= 0
    sampling = "greedy" if greedy else f"temperature {s.temperature:g}"
    for name, value, off, acts_when_greedy in (
        ("top-k", s.top_k, 0, False),
        ("top-p", s.top_p, 1.0, False),
        ("min-p", s.min_p, 0.0, False),
        ("repetition penalty", s.repetition_penalty, 1.0, True),
    ):
        if value != off and (acts_when_greedy or not greedy):
            sampling += f", {name} {value:g}"
    facts = [
        *size_and_speed(done),
        sampling,
        *([f"seed {done.seed_used}"] if done.seed_used is not None else []),
        done.provider,
    ]
    if message.partial:
        facts.insert(0, "stopped before the end" if done.error is None else f"error: {done.error}")
    return " · ".join(facts)


def size_and_speed(done) -> list[str]:
    """["12 tokens", "TTFT 123 ms", "31.2 tokens/s"] for a finished reply (`GenerationDone`):
    "1 token" for one, and no tokens/s when no decode step ran (under 2 tokens: the rate would
    read 0.0). Shared by the window's footer and the Markdown export."""
    count = done.completion_tokens
    facts = [f"{count} token" + ("" if count == 1 else "s"), f"TTFT {done.ttft_ms:.0f} ms"]
    if count >= 2:
        facts.append(f"{done.decode_tokens_per_s:.1f} tokens/s")
    return facts


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
