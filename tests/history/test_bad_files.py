"""A corrupt file, a database from a newer Tokenglass, or someone else's SQLite file: the user is
told (History.notice), a fresh database opens beside it, and the bad file keeps every byte."""

from __future__ import annotations

import sqlite3

import pytest

from desktop import paths
from desktop.history import History, HistoryError
from desktop.history_migrations import MIGRATIONS, migrate
from tests.history.records import make_done, make_steps


def _newer_schema(path) -> None:
    def m999_from_the_future(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE future (x)")

    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, [*MIGRATIONS, m999_from_the_future])
    db.close()


def _corrupt_header(path) -> None:
    path.write_bytes(b"this is not an SQLite file, it is a note\n" * 200)


def _corrupt_pages(path) -> None:
    """A real history database whose b-tree pages were overwritten (the header is intact)."""
    with History(path) as history:
        conv = history.create_conversation("soon damaged", "m")
        steps = make_steps(200, top=5)
        for _ in range(3):
            history.add_assistant_message(conv, make_done(steps), steps, "m")
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for page in range(2, len(data) // page_size, 2):
        start = page * page_size
        data[start : start + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))


def _foreign(path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, file TEXT)")
    db.execute("INSERT INTO photos (file) VALUES ('cat.jpg')")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("make_bad", "says"),
    [
        (_newer_schema, "newer version of Tokenglass"),
        (_corrupt_header, "could not be read"),
        (_corrupt_pages, "damaged"),
        (_foreign, "not a Tokenglass chat history"),
    ],
)
def test_bad_file_gets_a_notice_and_a_fresh_database_beside_it(tmp_path, make_bad, says):
    bad = tmp_path / "history.sqlite3"
    make_bad(bad)
    for leftover in tmp_path.glob("history.sqlite3-*"):  # -wal/-shm of the maker, if any
        leftover.unlink()
    before = bad.read_bytes()

    with History(bad) as history:
        assert history.notice is not None and says in history.notice
        assert str(bad) in history.notice and "history-1.sqlite3" in history.notice
        assert history.path == tmp_path / "history-1.sqlite3"
        conv = history.create_conversation("fresh", "m")
        history.add_user_message(conv, "still works")

    assert bad.read_bytes() == before  # untouched, byte for byte

    # the next start reuses the fresh database (and says so again) instead of making another
    with History(bad) as history:
        assert history.path == tmp_path / "history-1.sqlite3"
        assert history.notice is not None
        assert [c.title for c in history.list_conversations()] == ["fresh"]
    assert bad.read_bytes() == before
    assert not (tmp_path / "history-2.sqlite3").exists()


def test_default_path_is_in_the_user_data_folder(tmp_path):
    with History() as history:  # TOKENGLASS_HOME points at a temp dir (tests/conftest.py)
        assert history.path == paths.history_db()
        assert history.path.parent == paths.home()
        assert history.notice is None


def test_an_empty_file_is_a_new_database(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.touch()
    with History(path) as history:
        assert history.notice is None and history.path == path
        assert history.list_conversations() == []


def test_no_writable_place_raises_history_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(HistoryError, match="cannot be opened"):
        History(blocker / "history.sqlite3")
