"""The history database's schema, as an append-only list of migrations (after simonw/llm's
llm/migrations.py).

Each migration is a function that takes an open connection and changes the schema. `migrate(db)`
applies, in order, every migration whose name is not yet recorded in the `_migrations` table, each
in its own transaction together with its record, and sets `PRAGMA user_version` to the number
applied (a cheap "which schema is this" for tools and for older versions of Tokenglass).

Rules: never edit or reorder a migration that has shipped; append a new one. This module knows
nothing of the records stored (desktop/history.py converts them) and never opens files itself.

Float columns (logprob, prob, ...) are declared WITHOUT a type on purpose: a column with REAL
affinity stores an integral float as an integer on disk and hands back 0.0 for -0.0, while a
column without a type keeps the 8 bytes of every IEEE double as given. (NaN cannot be stored at all:
SQLite turns it into NULL, which history.py reads back as NaN.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = []
MIGRATIONS_TABLE = "_migrations"


def migration(fn: Migration) -> Migration:
    """Register `fn` as the next migration (decorator). Its name is what the database records."""
    MIGRATIONS.append(fn)
    return fn


class SchemaTooNewError(Exception):
    """The database records migrations this version of Tokenglass does not know."""

    def __init__(self, applied: int, known: int, unknown: list[str]) -> None:
        self.applied, self.known, self.unknown = applied, known, unknown
        super().__init__(f"schema has {applied} migrations, this version knows {known}")


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    """The names recorded in `_migrations` (empty for a database that has none yet), in order."""
    has_table = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
    ).fetchone()
    if not has_table:
        return []
    return [row[0] for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY rowid")]


def check_not_newer(db: sqlite3.Connection, migrations: list[Migration] | None = None) -> None:
    """Raise `SchemaTooNewError` when `db` was written by a newer schema than `migrations` knows."""
    migrations = MIGRATIONS if migrations is None else migrations
    known = [fn.__name__ for fn in migrations]
    applied = applied_migrations(db)
    user_version = db.execute("PRAGMA user_version").fetchone()[0]
    unknown = [name for name in applied if name not in known]
    if unknown or user_version > len(known):
        raise SchemaTooNewError(max(len(applied), user_version), len(known), unknown)


def migrate(db: sqlite3.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations `db` lacks, in order; return the names applied now.

    `db` must be in autocommit mode (isolation_level=None): each migration runs in its own
    BEGIN IMMEDIATE ... COMMIT with its record, so a crash leaves it either applied or not.
    Raises SchemaTooNewError (before changing anything) when `db` is from a newer version.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    check_not_newer(db, migrations)
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
        "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = set(applied_migrations(db))
    applied_now = []
    for number, fn in enumerate(migrations, start=1):
        if fn.__name__ in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            fn(db)
            db.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
                (fn.__name__, datetime.now(UTC).isoformat(timespec="microseconds")),
            )
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied_now.append(fn.__name__)
    return applied_now


@migration
def m001_conversations_messages_tokens(db: sqlite3.Connection) -> None:
    """Conversations, their messages, and each assistant message's per-token records."""
    db.execute(
        """CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at TEXT NOT NULL, -- ISO 8601 in UTC, microseconds
    updated_at TEXT NOT NULL
)"""
    )
    db.execute("CREATE INDEX conversations_updated_at ON conversations (updated_at)")
    db.execute(
        """CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    model TEXT,
    partial INTEGER NOT NULL DEFAULT 0, -- 1: the reply was stopped before its end
    -- GenerationDone (NULL for user messages)
    finish_reason TEXT,
    error TEXT,
    settings TEXT, -- GenerationSettings as JSON
    seed TEXT, -- decimal: a seed may not fit SQLite's signed 64-bit INTEGER
    provider TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    dropped_messages INTEGER,
    ttft_ms, -- float, milliseconds
    decode_tokens_per_s, -- float
    -- PromptInfo: what the model read (NULL when not recorded)
    prompt_text TEXT,
    prompt_ids TEXT, -- JSON list of token ids
    prompt_dropped_messages INTEGER,
    context_size INTEGER
)"""
    )
    db.execute("CREATE INDEX messages_conversation_id ON messages (conversation_id, id)")
    db.execute(
        """CREATE TABLE token_steps (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position INTEGER NOT NULL, -- order in the reply (0-based)
    step_index INTEGER NOT NULL, -- TokenStep.index
    token_id INTEGER NOT NULL,
    token TEXT NOT NULL,
    text TEXT NOT NULL,
    bytes BLOB NOT NULL,
    logprob, -- floats: no declared type, see the module docstring
    prob,
    sampling_prob,
    rank INTEGER NOT NULL,
    entropy, -- nats
    step_ms,
    PRIMARY KEY (message_id, position)
) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE alternatives (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position INTEGER NOT NULL, -- token_steps.position
    top_rank INTEGER NOT NULL, -- 0 = most likely
    token_id INTEGER NOT NULL,
    token TEXT NOT NULL,
    bytes BLOB NOT NULL,
    logprob,
    prob,
    sampling_prob,
    PRIMARY KEY (message_id, position, top_rank)
) WITHOUT ROWID"""
    )


@migration
def m002_message_tree(db: sqlite3.Connection) -> None:
    """The conversation becomes a tree: each message's parent, which version is active, where a
    reply was branched from a token, and the forced / picked flags of token records.

    parent_id: NULL for a first turn. It is a plain reference (no ON DELETE CASCADE): SQLite runs
    each cascade level as a nested trigger and refuses past 1,000 levels, which a long chat's
    chain of parents reaches; desktop/history.py deletes a subtree itself. active: 1 for the
    active version among the messages that share a parent (exactly one per parent). A message
    from before this migration gets the previous message of its conversation as its parent (the
    straight line it was) and is active. branch_*: the reply this one was branched from, the
    0-based token index, the token id and text it replaced there, and the id picked instead.
    """
    for column in (
        "parent_id INTEGER REFERENCES messages (id)",
        "active INTEGER NOT NULL DEFAULT 1",
        "branch_source_id INTEGER REFERENCES messages (id) ON DELETE SET NULL",
        "branch_index INTEGER",
        "branch_replaced_id INTEGER",
        "branch_replaced_token TEXT",
        "branch_picked_id INTEGER",
    ):
        db.execute(f"ALTER TABLE messages ADD COLUMN {column}")
    db.execute(
        "UPDATE messages SET parent_id = (SELECT max(p.id) FROM messages p "
        "WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id)"
    )
    db.execute("CREATE INDEX messages_parent_id ON messages (parent_id)")
    db.execute("CREATE INDEX messages_branch_source_id ON messages (branch_source_id)")
    db.execute("ALTER TABLE token_steps ADD COLUMN forced INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE token_steps ADD COLUMN picked INTEGER NOT NULL DEFAULT 0")


@migration
def m003_phases_and_sampler_chain(db: sqlite3.Connection) -> None:
    """Each reply's pipeline phases and each token's sampler chain, as JSON text.

    messages.phases: a JSON list of the reply's Phase records ({phase, tokens, ms, reused, ids,
    tokens_per_s}); token_steps.sampler: a JSON list of SamplerStage records ({stage,
    candidates, mass, rank}). NULL in rows saved before this migration. Numbered 3 so that it
    can follow the conversation tree's migration (developed beside it); names, not numbers,
    decide what has been applied.
    """
    db.execute("ALTER TABLE messages ADD COLUMN phases TEXT")
    db.execute("ALTER TABLE token_steps ADD COLUMN sampler TEXT")


@migration
def m004_chat_settings(db: sqlite3.Connection) -> None:
    """Each conversation keeps the system prompt and sampling settings it is run with, so that
    changing the defaults never rewrites an old chat's next turn (its cached prefix included).

    conversations.system_prompt: the text the model reads first ('' for none); NULL: not
    recorded. conversations.settings: GenerationSettings as JSON (as messages.settings); NULL:
    none chosen (the model's defaults apply).

    What a chat saved before this migration gets, i.e. what it would have had:
    - settings: those of its latest saved reply (the highest message id with settings), which
      are what its last turn was sent with; NULL when it has no reply.
    - system_prompt: NULL. No version before this one saved a system prompt, and reading one back
      out of a reply's rendered prompt would depend on each model's template, so it is left
      unrecorded and each client fills in the one it used before: the window its default system
      prompt (what such a chat's next turn was sent with until now), the CLI none (what
      `chat --continue` without --system sent). The window saves what it filled in at once.
    """
    db.execute("ALTER TABLE conversations ADD COLUMN system_prompt TEXT")
    db.execute("ALTER TABLE conversations ADD COLUMN settings TEXT")
    db.execute(
        "UPDATE conversations SET settings = (SELECT m.settings FROM messages m "
        "WHERE m.conversation_id = conversations.id AND m.settings IS NOT NULL "
        "ORDER BY m.id DESC LIMIT 1)"
    )
