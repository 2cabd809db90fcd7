"""Saved conversations and their per-token records, in a SQLite file (stdlib sqlite3, no Qt).

Owns: opening the history database (WAL, migrations from desktop/history_migrations.py), turning
the engine's records (`TokenStep`, `Alternative`, `GenerationDone`, `GenerationSettings`,
`PromptInfo`) into rows and back so that they compare equal (floats keep their 8 bytes, `bytes`
stay bytes, alternatives come back as tuples), the tree of messages (each has a parent; the
messages that share one are versions of one turn, one of them active; `messages` reads the active
path, `tree` every version), search (over every version), and the user-facing `HistoryError`.
Does not know: Qt, how records are shown, how they are exported (desktop/history_export.py), the
`Conversation` object (desktop/conversation_store.py moves one in and out).
The module is longer than most (about 770 lines): the rows of one schema, and the tree they form,
stay together in one place.

A database written by a newer Tokenglass, a corrupt file, or an SQLite file that is not ours is
never changed: a fresh database is opened beside it (history-1.sqlite3, ...) and `History.notice`
says what happened, so the app starts anyway. Every write is one transaction (BEGIN IMMEDIATE) with
synchronous=FULL, so a crash or a kill loses nothing already committed and never corrupts the file.
One `History` may be shared between threads: a lock serializes its calls.

Deleted text is gone from every file (case I11): the connection sets `secure_delete` (SQLite
overwrites deleted content with zeros instead of leaving it in free space; some builds default it
off), and a delete then checkpoints the WAL with TRUNCATE, so the pages that carried the text
before it was deleted leave the -wal file too (while the app runs, and after a crash).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from desktop import paths
from desktop.engine.errors import EngineError, SettingsError
from desktop.engine.events import (
    Alternative,
    GenerationDone,
    GenerationSettings,
    Phase,
    PromptInfo,
    Role,
    SamplerStage,
    TokenStep,
)
from desktop.history_migrations import SchemaTooNewError, check_not_newer, migrate

BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process (GUI and CLI) holding the lock
TITLE_MAX_CHARS = 60
# PRAGMA quick_check reads every page (about 70 ms for 37 MB here); above this size it is skipped
# at start-up so a long history still opens at once, and damage shows as a HistoryError on use.
QUICK_CHECK_MAX_BYTES = 128 * 1024 * 1024


class HistoryError(EngineError):
    """The history database cannot do what was asked; `str(err)` is a sentence for the user."""


class NoSuchConversation(HistoryError):
    """A conversation id that is not saved. The CLI exits 2 for it, as for any argument naming
    something that is not there (`cli_chat.UsageError`)."""

    exit_code = 2


@dataclass(frozen=True)
class ConversationSummary:
    """One row of the conversation list. Times are timezone-aware (UTC).

    system_prompt, settings: what the chat is run with (migration m004); None: not recorded
    (a chat saved before it, see `m004_chat_settings`) or, for settings, none chosen."""

    id: int
    title: str
    model: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    system_prompt: str | None = None
    settings: GenerationSettings | None = None


END: Literal["end"] = "end"
"""`parent_id=END`: after the last message of the conversation's active path (a straight chat)."""


@dataclass(frozen=True)
class StoredBranch:
    """Where a reply was branched from one of its tokens: `source_id` (the original reply's
    message id; None once that message is deleted), the 0-based token `index`, the `replaced_id`
    and `replaced_token` (its label) the original had there, and the `picked_id` put instead."""

    source_id: int | None
    index: int
    replaced_id: int
    replaced_token: str
    picked_id: int


@dataclass(frozen=True)
class StoredMessage:
    """One saved message. For an assistant reply `done`, `settings`, `seed`, `provider` and
    `steps` are what the engine produced (equal to the records saved); for a user message they
    are None / () . partial: the reply was stopped (or failed) before its end.
    prompt: what the model read for this reply, when it was saved with the reply.
    parent_id: the message it follows (None: a first turn). active: it is the active version
    among the messages that share its parent. branch: set for a reply branched from a token.
    phases: the reply's pipeline phases (tokenize, prefill or encode, decode), () when not saved.
    """

    id: int
    role: Role
    text: str
    created_at: datetime
    model: str | None
    settings: GenerationSettings | None
    seed: int | None
    provider: str | None
    done: GenerationDone | None
    steps: tuple[TokenStep, ...]
    partial: bool
    prompt: PromptInfo | None = None
    parent_id: int | None = None
    active: bool = True
    branch: StoredBranch | None = None
    phases: tuple[Phase, ...] = ()


class History:
    """The chat history database (see the module docstring).

    path: the SQLite file (default `paths.history_db()`); `self.path` is the file actually used,
    which differs from `path` when that one was unusable (then `self.notice` explains why).
    Raises HistoryError when no database can be opened at all (e.g. a read-only folder).
    """

    def __init__(self, path: Path | None = None) -> None:
        requested = Path(path) if path is not None else paths.history_db()
        self.notice: str | None = None
        self.path = requested
        problem = _probe(requested)
        if problem is not None:
            self.path = _fresh_path_beside(requested)
            self.notice = (
                f"{problem} It was left untouched; new chats are saved in {self.path} instead."
            )
        self._lock = threading.RLock()
        self._db = self._connect(self.path)

    # -- connection ---------------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # a commit is on disk before it returns
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA secure_delete = ON")  # deleted text is zeroed, not left free (I11)
            db.create_function("tg_fold", 1, _fold, deterministic=True)
            migrate(db)
        except (sqlite3.Error, OSError, SchemaTooNewError) as err:
            raise HistoryError(f"The chat history {path} cannot be opened: {err}.") from err
        return db

    def close(self) -> None:
        """Close the database (idempotent). The WAL is checkpointed into the main file."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, action: str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; sqlite3 errors become a HistoryError saying what could not be done."""
        with self._lock:
            if self._db is None:
                raise HistoryError("The chat history is closed.")
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                raise HistoryError(f"Could not {action} in {self.path}: {err}.") from err

    # -- conversations ------------------------------------------------------------------------

    def create_conversation(
        self,
        title: str,
        model: str,
        system_prompt: str | None = None,
        settings: GenerationSettings | None = None,
    ) -> int:
        """A new, empty conversation run with `system_prompt` and `settings` (None: not
        recorded, see ConversationSummary); returns its id."""
        now = _now()
        with self._transaction("create a conversation") as db:
            cursor = db.execute(
                "INSERT INTO conversations (title, model, created_at, updated_at, system_prompt, "
                "settings) VALUES (?, ?, ?, ?, ?, ?)",
                (_clean_title(title), model, now, now, system_prompt, _optional_json(settings)),
            )
            return int(cursor.lastrowid)  # type: ignore[arg-type]

    def set_chat_settings(
        self, conv_id: int, system_prompt: str | None, settings: GenerationSettings | None
    ) -> None:
        """What the conversation's next turns are run with (its list order stays: updated_at is
        the last message's time). Raises HistoryError when there is no such conversation."""
        with self._transaction("save the chat's settings") as db:
            cursor = db.execute(
                "UPDATE conversations SET system_prompt = ?, settings = ? WHERE id = ?",
                (system_prompt, _optional_json(settings), conv_id),
            )
            if cursor.rowcount == 0:
                raise _no_conversation(conv_id)

    def list_conversations(self, search: str | None = None) -> list[ConversationSummary]:
        """Conversations, most recently updated first. search: keep only those whose title or
        some message contains this text (case-insensitive, Unicode case folding)."""
        query = (
            "SELECT c.id, c.title, c.model, c.created_at, c.updated_at, "
            f"{_ACTIVE_PATH_COUNT}, "
            "c.system_prompt, c.settings "
            "FROM conversations c"
        )
        params: tuple[str, ...] = ()
        if search is not None and search.strip():
            query += (
                " WHERE instr(tg_fold(c.title), ?1) > 0 OR EXISTS (SELECT 1 FROM messages m "
                "WHERE m.conversation_id = c.id AND instr(tg_fold(m.text), ?1) > 0)"
            )
            params = (_fold(search.strip()),)
        query += " ORDER BY c.updated_at DESC, c.id DESC"
        with self._transaction("list conversations", write=False) as db:
            rows = db.execute(query, params).fetchall()
        return [_summary(row) for row in rows]

    def conversation(self, conv_id: int) -> ConversationSummary:
        """One conversation's summary. Raises HistoryError when there is none with this id."""
        with self._transaction("read a conversation", write=False) as db:
            row = db.execute(
                "SELECT c.id, c.title, c.model, c.created_at, c.updated_at, "
                f"{_ACTIVE_PATH_COUNT}, "
                "c.system_prompt, c.settings "
                "FROM conversations c WHERE c.id = ?",
                (conv_id,),
            ).fetchone()
        if row is None:
            raise _no_conversation(conv_id)
        return _summary(row)

    def rename_conversation(self, conv_id: int, title: str) -> None:
        with self._transaction("rename the conversation") as db:
            cursor = db.execute(
                # updated_at is the last message's time: a new title keeps the list's order
                "UPDATE conversations SET title = ? WHERE id = ?",
                (_clean_title(title), conv_id),
            )
            if cursor.rowcount == 0:
                raise _no_conversation(conv_id)

    def delete_conversation(self, conv_id: int) -> None:
        """Delete the conversation with its messages and token records, from every file (I11)."""
        with self._transaction("delete the conversation") as db:
            if db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,)).rowcount == 0:
                raise _no_conversation(conv_id)
        self._forget_deleted("delete the conversation")

    def _forget_deleted(self, action: str) -> None:
        """Checkpoint the WAL into the database file and truncate it to 0 bytes, so the copies of
        pages that held deleted text (written before the delete) leave the -wal file. A reader in
        another connection can keep the WAL busy; the next delete or close then finishes it."""
        with self._lock:
            if self._db is None:
                raise HistoryError("The chat history is closed.")
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as err:
                raise HistoryError(f"Could not {action} in {self.path}: {err}.") from err

    # -- messages -----------------------------------------------------------------------------

    def add_user_message(
        self, conv_id: int, text: str, parent_id: int | Literal["end"] | None = END
    ) -> int:
        """Save the user's message (call it when the message is sent) under `parent_id` (END:
        after the active path's last message; None: a first turn; a message id: under it, e.g.
        an edit is a new version under the edited message's parent). It becomes the active
        version, and its ancestors the active path. Returns its id. Raises HistoryError when
        the conversation or the parent is not there."""
        with self._transaction("save your message") as db:
            return _insert_message(db, conv_id, {"role": "user", "text": text}, parent_id)

    def add_assistant_message(
        self,
        conv_id: int,
        done: GenerationDone,
        steps: Sequence[TokenStep],
        model: str,
        prompt: PromptInfo | None = None,
        partial: bool = False,
        *,
        parent_id: int | Literal["end"] | None = END,
        branch: StoredBranch | None = None,
        phases: Sequence[Phase] = (),
    ) -> int:
        """Save a reply with its per-token records (sampler chains included) and its pipeline
        phases, all in one transaction; returns its id.

        partial: the reply was stopped before its end; a reply whose finish_reason is
        "cancelled" or "error" is saved as partial whatever this says. parent_id: as for
        `add_user_message` (a Regenerate or a branch: the original reply's parent). branch:
        where it was branched from (its `source_id` must be in this conversation). The reply
        becomes the active version, and its ancestors the active path. Raises HistoryError.
        """
        fields = _done_fields(done)
        fields.update(role="assistant", text=done.text, model=model)
        fields["partial"] = int(partial or done.finish_reason in ("cancelled", "error"))
        fields["phases"] = _records_to_json(phases)
        if prompt is not None:
            fields.update(
                prompt_text=prompt.prompt_text,
                prompt_ids=json.dumps([int(i) for i in prompt.prompt_ids]),
                prompt_dropped_messages=int(prompt.dropped_messages),
                context_size=int(prompt.context_size),
            )
        if branch is not None:
            fields.update(
                branch_source_id=branch.source_id,
                branch_index=int(branch.index),
                branch_replaced_id=int(branch.replaced_id),
                branch_replaced_token=branch.replaced_token,
                branch_picked_id=int(branch.picked_id),
            )
        with self._transaction("save the reply") as db:
            if branch is not None and branch.source_id is not None:
                _check_in_conversation(db, conv_id, branch.source_id)
            message_id = _insert_message(db, conv_id, fields, parent_id)
            db.executemany(
                f"INSERT INTO token_steps ({_STEP_COLUMNS}) "
                f"VALUES ({', '.join('?' * len(_STEP_COLUMNS.split(', ')))})",
                (_step_row(message_id, pos, step) for pos, step in enumerate(steps)),
            )
            db.executemany(
                "INSERT INTO alternatives VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _alternative_row(message_id, pos, top_rank, alt)
                    for pos, step in enumerate(steps)
                    for top_rank, alt in enumerate(step.top)
                ),
            )
            return message_id

    def messages(self, conv_id: int) -> list[StoredMessage]:
        """The conversation's active path (what the model reads), first turn first, with token
        records: for a chat without versions, every message. Raises HistoryError when there is
        no conversation with this id."""
        with self._transaction("read the conversation", write=False) as db:
            _check_conversation(db, conv_id)
            path = _active_path(_links(db, conv_id))
            return _read(db, conv_id, set(path))

    def tree(self, conv_id: int) -> list[StoredMessage]:
        """Every message of the conversation, every version, oldest first (a parent always
        before its children), with `parent_id`, `active`, `branch` and token records.
        Raises HistoryError when there is no conversation with this id."""
        with self._transaction("read the conversation", write=False) as db:
            _check_conversation(db, conv_id)
            return _read(db, conv_id, None)

    def set_active(self, conv_id: int, message_id: int) -> None:
        """Make `message_id` the active version among its siblings, and each of its ancestors
        among theirs, so the active path runs through it (Conversation.activate). The path
        below it follows each level's active child as saved. Raises HistoryError."""
        with self._transaction("switch the version") as db:
            _check_in_conversation(db, conv_id, message_id)
            _activate(db, conv_id, message_id)

    def delete_message(self, conv_id: int, message_id: int) -> None:
        """Delete `message_id` and every message under it (all versions below), with their
        token records (Conversation.remove: e.g. a reply that failed before its first token).
        When it was the active version, the version before it becomes active (else the next).
        Raises HistoryError when the message is not in this conversation."""
        with self._transaction("delete messages") as db:
            _check_in_conversation(db, conv_id, message_id)
            links = _links(db, conv_id)
            parent, active = links[message_id]
            doomed = _subtree(links, message_id)
            db.executemany(
                "DELETE FROM messages WHERE id = ?", ((i,) for i in sorted(doomed)[::-1])
            )
            if active:
                siblings = [i for i in _children(links)[parent] if i not in doomed]
                earlier = [i for i in siblings if i < message_id]
                if siblings:
                    _activate(db, conv_id, max(earlier) if earlier else min(siblings))
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (_now(), conv_id))
        self._forget_deleted("delete messages")  # I11: the text leaves the -wal file too


def default_title(text: str) -> str:
    """A conversation title from its first message: the first non-empty line, at most
    TITLE_MAX_CHARS characters (an ellipsis marks a cut)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        return "New chat"
    return line if len(line) <= TITLE_MAX_CHARS else line[: TITLE_MAX_CHARS - 1].rstrip() + "…"


def save_cli_turn(
    history: History,
    conv_id: int | None,
    user_text: str,
    done: GenerationDone,
    steps: Sequence[TokenStep],
    model: str,
    prompt: PromptInfo | None = None,
    phases: Sequence[Phase] = (),
    system_prompt: str | None = None,
) -> int:
    """Save one CLI chat turn: the user's message and the reply with its token records.

    conv_id None starts a conversation titled after `user_text`, kept with `system_prompt` and
    the reply's settings (the chat's settings, migration m004). Returns the conversation id, to
    pass back on the next turn. A cancelled reply (Ctrl-C) is saved as partial.
    Raises HistoryError when the database cannot be written.
    """
    if conv_id is None:
        conv_id = history.create_conversation(
            default_title(user_text), model, system_prompt, done.settings
        )
    history.add_user_message(conv_id, user_text)
    history.add_assistant_message(conv_id, done, steps, model, prompt=prompt, phases=phases)
    return conv_id


# -- opening a file that may be unusable ----------------------------------------------------------


def _probe(path: Path) -> str | None:
    """None when `path` is absent, empty, or a history database this version can use; else a
    sentence saying what is wrong with it. Opens the file read-only: it is never changed."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as err:
        return f"The chat history {path} could not be opened ({err})."
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if tables and "_migrations" not in tables:
            return f"{path} is an SQLite database but not a Tokenglass chat history."
        check_not_newer(db)
        small = path.stat().st_size <= QUICK_CHECK_MAX_BYTES
        result = db.execute("PRAGMA quick_check").fetchone()[0] if small else "ok"
        if result != "ok":
            return f"The chat history {path} is damaged ({result})."
    except SchemaTooNewError as err:
        return (
            f"The chat history {path} was written by a newer version of Tokenglass (schema "
            f"version {err.applied}; this version knows {err.known}). Open it with that version."
        )
    except sqlite3.DatabaseError as err:
        return f"The chat history {path} could not be read ({err}); the file is damaged."
    finally:
        db.close()
    return None


def _fresh_path_beside(path: Path) -> Path:
    """The first of history-1.sqlite3, history-2.sqlite3, ... that is absent or usable."""
    for n in range(1, 1000):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if _probe(candidate) is None:
            return candidate
    raise HistoryError(f"No usable chat history file could be made beside {path}.")


# -- records <-> rows -----------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _fold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def _clean_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise HistoryError("A conversation needs a title that is not empty.")
    return title


_ACTIVE_PATH_COUNT = (
    "(WITH RECURSIVE path(id) AS ("
    "SELECT m.id FROM messages m "
    "WHERE m.conversation_id = c.id AND m.parent_id IS NULL AND m.active = 1 "
    "UNION ALL SELECT m.id FROM messages m JOIN path ON m.parent_id = path.id WHERE m.active = 1"
    ") SELECT count(*) FROM path)"
)
"""SQL for a conversation's `message_count` (`c` is its row): the messages on its active path,
what the window shows and an export's `messages` holds; other versions are not counted (one
active version per parent, see history_migrations.m002)."""


def _no_conversation(conv_id: int) -> HistoryError:
    return NoSuchConversation(f"There is no saved conversation with id {conv_id}.")


def _summary(row: Sequence) -> ConversationSummary:
    return ConversationSummary(
        id=row[0],
        title=row[1],
        model=row[2],
        created_at=datetime.fromisoformat(row[3]),
        updated_at=datetime.fromisoformat(row[4]),
        message_count=row[5],
        system_prompt=row[6],
        settings=_settings_from_json(row[7]) if row[7] is not None else None,
    )


def _float_in(value: float) -> float:
    """A float to store. NaN is stored as NULL by SQLite (and read back as NaN by _float_out)."""
    return float(value)


def _float_out(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _insert_message(
    db: sqlite3.Connection,
    conv_id: int,
    fields: dict[str, object],
    parent_id: int | Literal["end"] | None,
) -> int:
    """Insert one message under `parent_id` (END: the active path's end) and make it active."""
    _check_conversation(db, conv_id)
    if parent_id == END:
        path = _active_path(_links(db, conv_id))
        parent_id = path[-1] if path else None
    elif parent_id is not None:
        _check_in_conversation(db, conv_id, parent_id)
    now = _now()
    fields = {"conversation_id": conv_id, "created_at": now, "parent_id": parent_id, **fields}
    columns = ", ".join(fields)
    marks = ", ".join("?" for _ in fields)
    cursor = db.execute(
        f"INSERT INTO messages ({columns}) VALUES ({marks})", tuple(fields.values())
    )
    message_id = int(cursor.lastrowid)  # type: ignore[arg-type]
    _activate(db, conv_id, message_id)
    db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conv_id))
    return message_id


# -- the tree -------------------------------------------------------------------------------------

Links = dict[int, tuple[int | None, bool]]
"""message id -> (parent id, active among its siblings), for one conversation, ids ascending."""


def _check_conversation(db: sqlite3.Connection, conv_id: int) -> None:
    if not db.execute("SELECT 1 FROM conversations WHERE id = ?", (conv_id,)).fetchone():
        raise _no_conversation(conv_id)


def _check_in_conversation(db: sqlite3.Connection, conv_id: int, message_id: int) -> None:
    """Raise HistoryError unless `message_id` is a message of conversation `conv_id`."""
    _check_conversation(db, conv_id)
    row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
    if row is None or row[0] != conv_id:
        raise HistoryError(f"Conversation {conv_id} has no message with id {message_id}.")


def _links(db: sqlite3.Connection, conv_id: int) -> Links:
    rows = db.execute(
        "SELECT id, parent_id, active FROM messages WHERE conversation_id = ? ORDER BY id",
        (conv_id,),
    )
    return {row[0]: (row[1], bool(row[2])) for row in rows}


def _active_path(links: Links) -> list[int]:
    """The ids of the active path, first turn first: from the first turns down, at each level
    the active child (the latest one if, against the rules, none or several are marked)."""
    children = _children(links)
    path: list[int] = []
    level = children.get(None, [])
    while level:
        marked = [i for i in level if links[i][1]]
        chosen = (marked or level)[-1]
        path.append(chosen)
        level = children.get(chosen, [])
    return path


def _subtree(links: Links, root: int) -> set[int]:
    """`root` and every message under it."""
    out = {root}
    for message_id, (parent, _) in links.items():  # ids ascending: a parent comes first
        if parent in out:
            out.add(message_id)
    return out


def _children(links: Links) -> dict[int | None, list[int]]:
    """parent id (None: the first turns) -> its children's ids, ascending."""
    children: dict[int | None, list[int]] = {}
    for message_id, (parent, _) in links.items():
        children.setdefault(parent, []).append(message_id)
    return children


def _activate(db: sqlite3.Connection, conv_id: int, message_id: int) -> None:
    """Make `message_id` and each of its ancestors the active version among their siblings
    (one UPDATE per level whose flags change; O(messages) work in all)."""
    links = _links(db, conv_id)
    children = _children(links)
    node: int | None = message_id
    while node is not None:
        parent, active = links[node]
        others = [i for i in children[parent] if i != node and links[i][1]]
        if not active or others:
            db.execute(
                "UPDATE messages SET active = (id = ?) WHERE conversation_id = ? "
                "AND parent_id IS ?",
                (node, conv_id, parent),
            )
        node = parent


def _read(db: sqlite3.Connection, conv_id: int, only: set[int] | None) -> list[StoredMessage]:
    """The conversation's messages (only those in `only` when given), ids ascending, with their
    token records."""
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conv_id,)
        ).fetchall()
        step_rows = db.execute(
            "SELECT t.* FROM token_steps t JOIN messages m ON m.id = t.message_id "
            "WHERE m.conversation_id = ? ORDER BY t.message_id, t.position",
            (conv_id,),
        ).fetchall()
        alt_rows = db.execute(
            "SELECT a.* FROM alternatives a JOIN messages m ON m.id = a.message_id "
            "WHERE m.conversation_id = ? ORDER BY a.message_id, a.position, a.top_rank",
            (conv_id,),
        ).fetchall()
    finally:
        db.row_factory = None
    if only is not None:
        rows = [r for r in rows if r["id"] in only]
        step_rows = [r for r in step_rows if r["message_id"] in only]
        alt_rows = [r for r in alt_rows if r["message_id"] in only]
    return _assemble(rows, step_rows, alt_rows)


def _done_fields(done: GenerationDone) -> dict[str, object]:
    return {
        "finish_reason": done.finish_reason,
        "error": done.error,
        "settings": _settings_to_json(done.settings),
        "seed": str(int(done.seed)),
        "provider": done.provider,
        "prompt_tokens": int(done.prompt_tokens),
        "completion_tokens": int(done.completion_tokens),
        "dropped_messages": int(done.dropped_messages),
        "ttft_ms": _float_in(done.ttft_ms),
        "decode_tokens_per_s": _float_in(done.decode_tokens_per_s),
    }


def _settings_to_json(settings: GenerationSettings) -> str:
    # json writes floats with repr(), which round-trips every double exactly.
    return json.dumps(dataclasses.asdict(settings), ensure_ascii=False)


def _optional_json(settings: GenerationSettings | None) -> str | None:
    return _settings_to_json(settings) if settings is not None else None


def _settings_from_json(text: str) -> GenerationSettings:
    """GenerationSettings from JSON; keys a newer version added are ignored, missing keys take
    their defaults, JSON lists become the tuples the dataclass holds."""
    raw = json.loads(text)
    known = {f.name for f in dataclasses.fields(GenerationSettings)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known}
    try:
        return GenerationSettings(**values)
    except SettingsError:  # saved before the engine checked ranges: keep the values in range
        return GenerationSettings(**{k: v for k, v in values.items() if _in_range(k, v)})


def _in_range(name: str, value: object) -> bool:
    try:
        GenerationSettings(**{name: value})
    except SettingsError:
        return False
    return True


_STEP_COLUMNS = (
    "message_id, position, step_index, token_id, token, text, bytes, logprob, prob, "
    "sampling_prob, rank, entropy, step_ms, forced, picked, sampler"
)


def _step_row(message_id: int, position: int, step: TokenStep) -> tuple:
    return (
        message_id,
        position,
        int(step.index),
        int(step.id),
        step.token,
        step.text,
        bytes(step.bytes),
        _float_in(step.logprob),
        _float_in(step.prob),
        _float_in(step.sampling_prob),
        int(step.rank),
        _float_in(step.entropy),
        _float_in(step.step_ms),
        int(step.forced),
        int(step.picked),
        _records_to_json(step.sampler),
    )


def _records_to_json(records: Sequence[Phase] | Sequence[SamplerStage]) -> str:
    """Frozen records as a JSON list of their fields (floats by repr: exact round trip)."""
    return json.dumps([dataclasses.asdict(r) for r in records], ensure_ascii=False)


def _phases_from_json(text: str | None) -> tuple[Phase, ...]:
    """Phase records from JSON (NULL, from before migration 3: none); ids back to a tuple."""
    rows = json.loads(text) if text else []
    return tuple(Phase(**{**row, "ids": tuple(row.get("ids", ()))}) for row in rows)


def _sampler_from_json(text: str | None) -> tuple[SamplerStage, ...]:
    """A token's sampler chain from JSON (NULL, from before migration 3: none)."""
    return tuple(SamplerStage(**row) for row in json.loads(text)) if text else ()


def _alternative_row(message_id: int, position: int, top_rank: int, alt: Alternative) -> tuple:
    return (
        message_id,
        position,
        top_rank,
        int(alt.id),
        alt.token,
        bytes(alt.bytes),
        _float_in(alt.logprob),
        _float_in(alt.prob),
        _float_in(alt.sampling_prob),
    )


def _assemble(
    rows: list[sqlite3.Row], step_rows: list[sqlite3.Row], alt_rows: list[sqlite3.Row]
) -> list[StoredMessage]:
    """StoredMessages from the rows of one conversation (all ordered by message, position)."""
    alternatives: dict[tuple[int, int], list[Alternative]] = {}
    for a in alt_rows:
        alternatives.setdefault((a["message_id"], a["position"]), []).append(
            Alternative(
                id=a["token_id"],
                token=a["token"],
                bytes=bytes(a["bytes"]),
                logprob=_float_out(a["logprob"]),
                prob=_float_out(a["prob"]),
                sampling_prob=_float_out(a["sampling_prob"]),
            )
        )
    steps: dict[int, list[TokenStep]] = {}
    for s in step_rows:
        steps.setdefault(s["message_id"], []).append(
            TokenStep(
                index=s["step_index"],
                id=s["token_id"],
                token=s["token"],
                text=s["text"],
                bytes=bytes(s["bytes"]),
                logprob=_float_out(s["logprob"]),
                prob=_float_out(s["prob"]),
                sampling_prob=_float_out(s["sampling_prob"]),
                rank=s["rank"],
                entropy=_float_out(s["entropy"]),
                top=tuple(alternatives.get((s["message_id"], s["position"]), ())),
                step_ms=_float_out(s["step_ms"]),
                forced=bool(s["forced"]),
                picked=bool(s["picked"]),
                sampler=_sampler_from_json(s["sampler"]),
            )
        )
    return [_message(row, tuple(steps.get(row["id"], ()))) for row in rows]


def _message(row: sqlite3.Row, steps: tuple[TokenStep, ...]) -> StoredMessage:
    done = None
    if row["finish_reason"] is not None:
        done = GenerationDone(
            finish_reason=row["finish_reason"],
            text=row["text"],
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            ttft_ms=_float_out(row["ttft_ms"]),
            decode_tokens_per_s=_float_out(row["decode_tokens_per_s"]),
            provider=row["provider"],
            seed=int(row["seed"]),
            dropped_messages=row["dropped_messages"],
            error=row["error"],
            settings=_settings_from_json(row["settings"]),
        )
    prompt = None
    if row["prompt_ids"] is not None:
        prompt = PromptInfo(
            prompt_text=row["prompt_text"],
            prompt_ids=tuple(json.loads(row["prompt_ids"])),
            dropped_messages=row["prompt_dropped_messages"],
            context_size=row["context_size"],
        )
    branch = None
    if row["branch_index"] is not None:
        branch = StoredBranch(
            source_id=row["branch_source_id"],
            index=row["branch_index"],
            replaced_id=row["branch_replaced_id"],
            replaced_token=row["branch_replaced_token"],
            picked_id=row["branch_picked_id"],
        )
    return StoredMessage(
        id=row["id"],
        role=row["role"],
        text=row["text"],
        created_at=datetime.fromisoformat(row["created_at"]),
        model=row["model"],
        settings=done.settings if done else None,
        seed=done.seed if done else None,
        provider=done.provider if done else None,
        done=done,
        steps=steps,
        partial=bool(row["partial"]),
        prompt=prompt,
        parent_id=row["parent_id"],
        active=bool(row["active"]),
        branch=branch,
        phases=_phases_from_json(row["phases"]),
    )
