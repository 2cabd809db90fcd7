"""I11: a deleted chat's text is gone from every file of the history folder (history.sqlite3 and
its -wal/-shm), on a build whose SQLite leaves secure_delete off: every connection is opened with
secure_delete forced OFF first, as such a build would, and the raw bytes of each file are read."""

from __future__ import annotations

import sqlite3

import pytest

from desktop.history import History
from tests.history.records import make_done, make_steps

SECRET = "plum-ledger-7731"


@pytest.fixture
def insecure_build(monkeypatch):
    """sqlite3.connect as on a build compiled without SQLITE_SECURE_DELETE."""
    real = sqlite3.connect

    def connect(*args, **kwargs):
        db = real(*args, **kwargs)
        db.execute("PRAGMA secure_delete = OFF")
        return db

    monkeypatch.setattr(sqlite3, "connect", connect)


def files_holding(folder, text: str) -> list[str]:
    needle = text.encode()
    return sorted(p.name for p in folder.iterdir() if p.is_file() and needle in p.read_bytes())


def save_secret_chat(history: History) -> int:
    conv = history.create_conversation(f"About {SECRET}", "m")
    history.add_user_message(conv, f"Remember {SECRET} for me")
    steps = make_steps(4, top=2)
    done = make_done(steps)
    history.add_assistant_message(conv, done, steps, "m", None)
    return conv


def test_deleted_chat_leaves_no_file_holding_its_text(tmp_path, insecure_build):
    folder = tmp_path / "data"
    history = History(folder / "history.sqlite3")
    keep = history.create_conversation("Other", "m")
    history.add_user_message(keep, "nothing to hide")
    conv = save_secret_chat(history)
    assert files_holding(folder, SECRET)  # the test can see the text while it is there
    history.delete_conversation(conv)
    assert files_holding(folder, SECRET) == []  # while the app still runs, -wal included
    history.close()
    assert files_holding(folder, SECRET) == []
    with History(folder / "history.sqlite3") as again:
        assert [c.id for c in again.list_conversations()] == [keep]


def test_deleted_messages_leave_no_file_holding_their_text(tmp_path, insecure_build):
    folder = tmp_path / "data"
    with History(folder / "history.sqlite3") as history:
        conv = history.create_conversation("Chat", "m")
        history.add_user_message(conv, "kept message")
        second = history.add_user_message(conv, f"Remember {SECRET}")
        history.delete_message(conv, second)  # the window's delete: one subtree
        assert files_holding(folder, SECRET) == []
        assert [m.text for m in history.messages(conv)] == ["kept message"]


def test_without_the_fix_the_text_would_stay(tmp_path, insecure_build):
    """The check can fail: a plain delete on such a build leaves the text in the files."""
    folder = tmp_path / "raw"
    folder.mkdir()
    db = sqlite3.connect(folder / "plain.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE t (x TEXT)")
    db.execute("INSERT INTO t VALUES (?)", (f"Remember {SECRET}",))
    db.execute("DELETE FROM t")
    assert files_holding(folder, SECRET)
    db.close()


def test_settings_saved_before_ranges_were_checked_still_load(tmp_path):
    """A reply saved by an older version with a setting now out of range (the engine checked
    none) opens; the value out of range falls back to its default, the others are kept."""
    from desktop.history import _settings_from_json

    settings = _settings_from_json('{"top_logprobs": 80, "temperature": 0.3, "top_p": 0.0}')
    assert settings.top_logprobs == 10 and settings.temperature == 0.3 and settings.top_p == 0.0
