"""Migrations on an empty database give exactly the expected schema, applied once, recorded."""

from __future__ import annotations

import sqlite3

import pytest

from desktop.engine.events import GenerationSettings
from desktop.history import History
from desktop.history_migrations import MIGRATIONS, migrate

EXPECTED_OBJECTS = [
    ("table", "_migrations", "_migrations"),
    ("index", "sqlite_autoindex__migrations_1", "_migrations"),
    ("table", "conversations", "conversations"),
    ("index", "conversations_updated_at", "conversations"),
    ("table", "messages", "messages"),
    ("index", "messages_conversation_id", "messages"),
    ("table", "token_steps", "token_steps"),
    ("table", "alternatives", "alternatives"),
    ("index", "messages_parent_id", "messages"),
    ("index", "messages_branch_source_id", "messages"),
]

# PRAGMA table_info rows: (cid, name, declared type, notnull, default, pk position)
EXPECTED_COLUMNS = {
    "_migrations": [
        (0, "name", "TEXT", 0, None, 1),
        (1, "applied_at", "TEXT", 1, None, 0),
    ],
    "conversations": [
        (0, "id", "INTEGER", 0, None, 1),
        (1, "title", "TEXT", 1, None, 0),
        (2, "model", "TEXT", 1, None, 0),
        (3, "created_at", "TEXT", 1, None, 0),
        (4, "updated_at", "TEXT", 1, None, 0),
        (5, "system_prompt", "TEXT", 0, None, 0),  # m004
        (6, "settings", "TEXT", 0, None, 0),  # m004
    ],
    "messages": [
        (0, "id", "INTEGER", 0, None, 1),
        (1, "conversation_id", "INTEGER", 1, None, 0),
        (2, "role", "TEXT", 1, None, 0),
        (3, "text", "TEXT", 1, None, 0),
        (4, "created_at", "TEXT", 1, None, 0),
        (5, "model", "TEXT", 0, None, 0),
        (6, "partial", "INTEGER", 1, "0", 0),
        (7, "finish_reason", "TEXT", 0, None, 0),
        (8, "error", "TEXT", 0, None, 0),
        (9, "settings", "TEXT", 0, None, 0),
        (10, "seed", "TEXT", 0, None, 0),
        (11, "provider", "TEXT", 0, None, 0),
        (12, "prompt_tokens", "INTEGER", 0, None, 0),
        (13, "completion_tokens", "INTEGER", 0, None, 0),
        (14, "dropped_messages", "INTEGER", 0, None, 0),
        (15, "ttft_ms", "", 0, None, 0),
        (16, "decode_tokens_per_s", "", 0, None, 0),
        (17, "prompt_text", "TEXT", 0, None, 0),
        (18, "prompt_ids", "TEXT", 0, None, 0),
        (19, "prompt_dropped_messages", "INTEGER", 0, None, 0),
        (20, "context_size", "INTEGER", 0, None, 0),
        (21, "parent_id", "INTEGER", 0, None, 0),
        (22, "active", "INTEGER", 1, "1", 0),
        (23, "branch_source_id", "INTEGER", 0, None, 0),
        (24, "branch_index", "INTEGER", 0, None, 0),
        (25, "branch_replaced_id", "INTEGER", 0, None, 0),
        (26, "branch_replaced_token", "TEXT", 0, None, 0),
        (27, "branch_picked_id", "INTEGER", 0, None, 0),
        (28, "phases", "TEXT", 0, None, 0),  # m003
    ],
    "token_steps": [
        (0, "message_id", "INTEGER", 1, None, 1),
        (1, "position", "INTEGER", 1, None, 2),
        (2, "step_index", "INTEGER", 1, None, 0),
        (3, "token_id", "INTEGER", 1, None, 0),
        (4, "token", "TEXT", 1, None, 0),
        (5, "text", "TEXT", 1, None, 0),
        (6, "bytes", "BLOB", 1, None, 0),
        (7, "logprob", "", 0, None, 0),
        (8, "prob", "", 0, None, 0),
        (9, "sampling_prob", "", 0, None, 0),
        (10, "rank", "INTEGER", 1, None, 0),
        (11, "entropy", "", 0, None, 0),
        (12, "step_ms", "", 0, None, 0),
        (13, "forced", "INTEGER", 1, "0", 0),
        (14, "picked", "INTEGER", 1, "0", 0),
        (15, "sampler", "TEXT", 0, None, 0),  # m003
    ],
    "alternatives": [
        (0, "message_id", "INTEGER", 1, None, 1),
        (1, "position", "INTEGER", 1, None, 2),
        (2, "top_rank", "INTEGER", 1, None, 3),
        (3, "token_id", "INTEGER", 1, None, 0),
        (4, "token", "TEXT", 1, None, 0),
        (5, "bytes", "BLOB", 1, None, 0),
        (6, "logprob", "", 0, None, 0),
        (7, "prob", "", 0, None, 0),
        (8, "sampling_prob", "", 0, None, 0),
    ],
}

# PRAGMA foreign_key_list rows, reduced to (table, from, to, on_delete)
EXPECTED_FOREIGN_KEYS = {
    "_migrations": [],
    "conversations": [],
    "messages": [
        ("messages", "branch_source_id", "id", "SET NULL"),
        ("messages", "parent_id", "id", "NO ACTION"),
        ("conversations", "conversation_id", "id", "CASCADE"),
    ],
    "token_steps": [("messages", "message_id", "id", "CASCADE")],
    "alternatives": [("messages", "message_id", "id", "CASCADE")],
}

EXPECTED_INDEX_COLUMNS = {
    "conversations_updated_at": ["updated_at"],
    "messages_conversation_id": ["conversation_id", "id"],
    "messages_parent_id": ["parent_id"],
    "messages_branch_source_id": ["branch_source_id"],
}


def _fresh(tmp_path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
    assert migrate(db) == [fn.__name__ for fn in MIGRATIONS]
    return db


def test_empty_database_gets_exactly_the_expected_schema(tmp_path):
    db = _fresh(tmp_path)
    objects = db.execute("SELECT type, name, tbl_name FROM sqlite_master ORDER BY rowid").fetchall()
    assert objects == EXPECTED_OBJECTS
    for table, columns in EXPECTED_COLUMNS.items():
        assert db.execute(f"PRAGMA table_info({table})").fetchall() == columns, table
        fks = [(r[2], r[3], r[4], r[6]) for r in db.execute(f"PRAGMA foreign_key_list({table})")]
        assert fks == EXPECTED_FOREIGN_KEYS[table], table
    for index, columns in EXPECTED_INDEX_COLUMNS.items():
        assert [r[2] for r in db.execute(f"PRAGMA index_info({index})")] == columns
    without_rowid = {
        name
        for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        if sql.endswith("WITHOUT ROWID")
    }
    assert without_rowid == {"token_steps", "alternatives"}
    assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert [r[0] for r in db.execute("SELECT name FROM _migrations")] == [
        fn.__name__ for fn in MIGRATIONS
    ]


def test_migrations_apply_once_and_a_new_one_is_applied_to_an_old_database(tmp_path):
    db = _fresh(tmp_path)
    assert migrate(db) == []  # nothing left to apply

    def m999_add_pinned(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")

    assert migrate(db, [*MIGRATIONS, m999_add_pinned]) == ["m999_add_pinned"]
    assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS) + 1,)
    assert "pinned" in [r[1] for r in db.execute("PRAGMA table_info(conversations)")]


def test_a_failing_migration_leaves_nothing_behind(tmp_path):
    db = _fresh(tmp_path)

    def m999_broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("THIS IS NOT SQL")

    with pytest.raises(sqlite3.OperationalError):
        migrate(db, [*MIGRATIONS, m999_broken])
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in names
    assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert db.execute("SELECT count(*) FROM _migrations").fetchone() == (len(MIGRATIONS),)


def test_history_opens_in_wal_mode_with_foreign_keys(tmp_path):
    with History(tmp_path / "h.sqlite3") as history:
        assert history._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert history._db.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert history.notice is None


def test_a_reply_saved_before_m003_opens_without_phases_or_chains(tmp_path):
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    names = [fn.__name__ for fn in MIGRATIONS]
    first = MIGRATIONS[: names.index("m003_phases_and_sampler_chain")]
    migrate(db, first)  # the schema as the previous version left it
    db.execute("INSERT INTO conversations VALUES (1, 't', 'm', '2026-01-01', '2026-01-01')")
    db.execute(
        "INSERT INTO messages (id, conversation_id, role, text, created_at, finish_reason, "
        "settings, seed, provider, prompt_tokens, completion_tokens, dropped_messages, ttft_ms, "
        "decode_tokens_per_s) VALUES (1, 1, 'assistant', 'a', '2026-01-01', 'stop', '{}', '1', "
        "'CPUExecutionProvider', 3, 1, 0, 1.5, 0.0)"
    )
    db.execute(
        "INSERT INTO token_steps (message_id, position, step_index, token_id, token, text, bytes, "
        "logprob, prob, sampling_prob, rank, entropy, step_ms) "
        "VALUES (1, 0, 0, 5, 'a', 'a', x'61', -0.1, 0.9, 1.0, 0, 0.2, 3.0)"
    )
    db.close()
    with History(path) as history:  # applies m003
        (reply,) = history.messages(1)
    assert reply.phases == () and reply.steps[0].sampler == ()
    assert reply.steps[0].id == 5


def test_chats_saved_before_m004_get_their_latest_replys_settings_and_no_recorded_prompt(tmp_path):
    """An old file migrates: each chat's settings are those its latest reply was sent with, its
    system prompt is not recorded (None: each client fills in the one it used before m004)."""
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, [fn for fn in MIGRATIONS if fn.__name__ != "m004_chat_settings"])
    for conv in (1, 2):
        db.execute(
            f"INSERT INTO conversations VALUES ({conv}, 't', 'm', '2026-01-01', '2026-01-01')"
        )
    reply = (
        "INSERT INTO messages (id, conversation_id, role, text, created_at, finish_reason, "
        "settings, seed, provider, prompt_tokens, completion_tokens, dropped_messages, ttft_ms, "
        "decode_tokens_per_s) VALUES (?, 1, 'assistant', 'a', '2026-01-01', 'stop', ?, '1', "
        "'CPUExecutionProvider', 3, 1, 0, 1.5, 0.0)"
    )
    db.execute(reply, (1, '{"temperature": 0.3, "top_k": 5}'))
    db.execute(reply, (2, '{"temperature": 1.5, "seed": 9}'))  # the latest: this one counts
    db.execute(
        "INSERT INTO messages (id, conversation_id, role, text, created_at) "
        "VALUES (3, 2, 'user', 'no reply yet', '2026-01-01')"
    )
    db.close()
    with History(path) as history:  # applies m004
        answered, unanswered = history.conversation(1), history.conversation(2)
    assert answered.settings == GenerationSettings(temperature=1.5, seed=9)
    assert answered.system_prompt is None
    assert unanswered.settings is None and unanswered.system_prompt is None


def test_chat_settings_round_trip_through_the_file(tmp_path):
    path = tmp_path / "h.sqlite3"
    chosen = GenerationSettings(temperature=0.0, top_p=0.25, seed=3, stop_strings=("\n",))
    with History(path) as history:
        conv = history.create_conversation("t", "m", "Be brief.", chosen)
        plain = history.create_conversation("u", "m")
        history.set_chat_settings(plain, "", None)
    with History(path) as history:  # a fresh connection reads the file
        saved, other = history.conversation(conv), history.conversation(plain)
        listed = {c.id: c for c in history.list_conversations()}
        history.set_chat_settings(conv, "Be long.", GenerationSettings(top_k=7))
        changed = history.conversation(conv)
    assert (saved.system_prompt, saved.settings) == ("Be brief.", chosen)
    assert (other.system_prompt, other.settings) == ("", None)
    assert listed[conv].settings == chosen
    assert (changed.system_prompt, changed.settings) == ("Be long.", GenerationSettings(top_k=7))
    assert changed.updated_at == saved.updated_at  # settings do not reorder the chat list
