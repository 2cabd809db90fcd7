"""The message tree in the history: versions, the active path, branches, deleting a subtree,
search over every version, and a file from before the tree (schema m001) opening as a straight
line."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
import time

import pytest

from desktop.history import History, HistoryError, StoredBranch, _alternative_row, _done_fields
from desktop.history_migrations import MIGRATIONS, migrate
from tests.history.records import exact, make_done, make_prompt, make_steps


@pytest.fixture
def history(tmp_path):
    with History(tmp_path / "history.sqlite3") as opened:
        yield opened


def texts(messages) -> list[str]:
    return [m.text for m in messages]


def reply(history, conv, parent, steps=None, **kwargs) -> int:
    steps = make_steps(3) if steps is None else steps
    return history.add_assistant_message(
        conv, make_done(steps), steps, "m", parent_id=parent, **kwargs
    )


def test_versions_switch_the_active_path_and_keep_every_reply(history):
    conv = history.create_conversation("t", "m")
    hi = history.add_user_message(conv, "Hi")
    first = reply(history, conv, hi, make_steps(2))
    later = history.add_user_message(conv, "and then?")  # after `first`, the path's end
    second = reply(history, conv, hi, make_steps(4))  # Regenerate: a sibling of `first`
    assert [m.id for m in history.messages(conv)] == [hi, second]
    by_id = {m.id: m for m in history.tree(conv)}
    assert list(by_id) == [hi, first, later, second]
    assert by_id[first].parent_id == hi and by_id[second].parent_id == hi
    assert not by_id[first].active and by_id[second].active and by_id[later].active
    assert by_id[first].steps == make_steps(2) and by_id[second].steps == make_steps(4)

    history.set_active(conv, later)  # its ancestors follow: `first` is active again
    assert [m.id for m in history.messages(conv)] == [hi, first, later]
    history.set_active(conv, second)
    assert [m.id for m in history.messages(conv)] == [hi, second]
    history.set_active(conv, first)  # below `first`, the active child as saved
    assert [m.id for m in history.messages(conv)] == [hi, first, later]


def test_an_edited_first_message_is_a_version_under_the_root(history):
    conv = history.create_conversation("t", "m")
    original = history.add_user_message(conv, "Hi")
    reply(history, conv, original)
    edited = history.add_user_message(conv, "Hello", parent_id=None)
    assert texts(history.messages(conv)) == ["Hello"]
    answer = reply(history, conv, history.messages(conv)[-1].id)
    assert [m.id for m in history.messages(conv)] == [edited, answer]
    history.set_active(conv, original)
    assert texts(history.messages(conv))[0] == "Hi" and len(history.messages(conv)) == 2


def test_a_branch_and_its_token_flags_round_trip(history):
    conv = history.create_conversation("t", "m")
    user = history.add_user_message(conv, "Hi")
    source = reply(history, conv, user, make_steps(6))
    steps = tuple(
        dataclasses.replace(s, forced=i <= 2, picked=i == 2) for i, s in enumerate(make_steps(5))
    )
    point = StoredBranch(source, 2, 2002, "<F0 9F>2", steps[2].id)
    branched = history.add_assistant_message(
        conv, make_done(steps), steps, "m", make_prompt(), parent_id=user, branch=point
    )
    with History(history.path) as again:  # a new connection: nothing comes from memory
        stored = {m.id: m for m in again.tree(conv)}
    assert stored[branched].branch == point and stored[source].branch is None
    assert exact(stored[branched].steps) == exact(steps)
    assert [(s.forced, s.picked) for s in stored[branched].steps][:4] == [
        (True, False),
        (True, False),
        (True, True),
        (False, False),
    ]
    history.delete_message(conv, source)  # the source goes; the branch says so
    assert {m.id: m for m in history.tree(conv)}[branched].branch.source_id is None


def test_deleting_a_version_takes_its_subtree_and_activates_the_one_before(history):
    conv = history.create_conversation("t", "m")
    user = history.add_user_message(conv, "Hi")
    a = reply(history, conv, user)
    b = reply(history, conv, user)
    under_b = history.add_user_message(conv, "under b")
    reply(history, conv, under_b)
    c = reply(history, conv, user)
    history.set_active(conv, b)
    history.delete_message(conv, b)
    assert [m.id for m in history.tree(conv)] == [user, a, c]
    assert [m.id for m in history.messages(conv)] == [user, a]  # the version before b
    count = history._db.execute("SELECT count(*) FROM token_steps").fetchone()[0]
    assert count == 2 * 3  # b's and its reply's records went with them
    history.delete_message(conv, c)  # not the active one: `a` stays active
    assert [m.id for m in history.messages(conv)] == [user, a]


def test_search_finds_text_in_a_version_that_is_not_active(history):
    conv = history.create_conversation("t", "m")
    user = history.add_user_message(conv, "Tell me about eggs")
    steps = (dataclasses.replace(make_steps(1)[0], text=" Ostrich"),)
    history.add_assistant_message(conv, make_done(steps), steps, "m", parent_id=user)
    reply(history, conv, user)  # the active version says something else
    assert "Ostrich" not in "".join(texts(history.messages(conv)))
    assert [c.id for c in history.list_conversations(search="ostrich")] == [conv]


def test_ids_from_elsewhere_are_refused_and_nothing_is_saved(history):
    conv = history.create_conversation("t", "m")
    other = history.create_conversation("u", "m")
    foreign = history.add_user_message(other, "elsewhere")
    with pytest.raises(HistoryError, match=f"no message with id {foreign}"):
        history.add_user_message(conv, "x", parent_id=foreign)
    with pytest.raises(HistoryError, match="no message with id 999"):
        reply(history, conv, None, branch=StoredBranch(999, 0, 1, "a", 2))
    with pytest.raises(HistoryError):
        history.set_active(conv, foreign)
    with pytest.raises(HistoryError):
        history.delete_message(conv, foreign)
    assert history.tree(conv) == [] and len(history.tree(other)) == 1


def test_a_long_chain_of_parents_deletes_without_trigger_recursion(history):
    """SQLite runs each ON DELETE CASCADE level as a nested trigger (at most 1,000): the parent
    link has no cascade, so a 1,500-message chat deletes, whole or from its first message."""
    for deleting_conversation in (True, False):
        conv = history.create_conversation("long", "m")
        _write_straight_chat(history._db, conv, 1500, steps=())
        history._db.execute(
            "UPDATE messages SET parent_id = id - 1 WHERE conversation_id = ? AND id > "
            "(SELECT min(id) FROM messages WHERE conversation_id = ?)",
            (conv, conv),
        )
        if deleting_conversation:
            history.delete_conversation(conv)
        else:
            history.delete_message(conv, history.messages(conv)[0].id)
            assert history.tree(conv) == []
    assert history._db.execute("SELECT count(*) FROM messages").fetchone() == (0,)


# -- a file written before the tree ---------------------------------------------------------------


def _write_straight_chat(db: sqlite3.Connection, conv: int, count: int, steps) -> None:
    """`count` messages (user, reply, user, ...) as the code before the tree wrote them: m001's
    columns only, replies with `steps` (13 columns per token record) and their alternatives."""
    done = make_done(tuple(steps))
    db.execute("BEGIN")
    for n in range(count):
        if n % 2 == 0:
            fields: dict = {"role": "user", "text": f"question {n}"}
        else:
            fields = {**_done_fields(done), "role": "assistant", "text": done.text, "model": "m"}
        fields.update(conversation_id=conv, created_at="2026-11-01T10:00:00.000000+00:00")
        cursor = db.execute(
            f"INSERT INTO messages ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
            tuple(fields.values()),
        )
        if fields["role"] == "assistant":
            message_id = cursor.lastrowid
            db.executemany(
                f"INSERT INTO token_steps ({M001_STEP_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_m001_step_row(message_id, pos, s) for pos, s in enumerate(steps)),
            )
            db.executemany(
                "INSERT INTO alternatives VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _alternative_row(message_id, pos, rank, alt)
                    for pos, s in enumerate(steps)
                    for rank, alt in enumerate(s.top)
                ),
            )
    db.execute("COMMIT")


M001_STEP_COLUMNS = (
    "message_id, position, step_index, token_id, token, text, bytes, logprob, prob, "
    "sampling_prob, rank, entropy, step_ms"
)


def _m001_step_row(message_id: int, position: int, s) -> tuple:
    return (
        message_id,
        position,
        s.index,
        s.id,
        s.token,
        s.text,
        s.bytes,
        s.logprob,
        s.prob,
        s.sampling_prob,
        s.rank,
        s.entropy,
        s.step_ms,
    )


def test_a_file_from_before_the_tree_opens_as_straight_lines_in_under_a_second(tmp_path):
    """1,000 messages in 4 conversations, replies with 20 token records of 5 alternatives each,
    written with schema m001 as the code before the tree wrote them: the file opens (probe,
    quick_check, migration) in under a second, and each conversation reads back as the straight
    line it was, records unchanged."""
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:1])
    steps = make_steps(20, top=5)
    convs = []
    for c in range(4):
        now = "2026-11-01T10:00:00.000000+00:00"
        cursor = db.execute(
            "INSERT INTO conversations (title, model, created_at, updated_at) VALUES (?,?,?,?)",
            (f"chat {c}", "m", now, now),
        )
        convs.append(cursor.lastrowid)
        _write_straight_chat(db, cursor.lastrowid, 250, steps)
    db.close()

    started = time.perf_counter()
    history = History(path)
    elapsed = time.perf_counter() - started
    try:
        assert history.notice is None and history.path == path
        assert elapsed < 1.0, f"opening and migrating took {elapsed:.2f} s"
        assert history.messages(convs[0]) == history.tree(convs[0])
        for conv in convs:
            path_messages = history.messages(conv)
            assert len(path_messages) == 250
            assert path_messages[0].parent_id is None
            assert all(
                m.parent_id == prev.id and m.active for prev, m in itertools.pairwise(path_messages)
            )
            assert texts(path_messages)[:2] == ["question 0", make_done(steps).text]
            # a file from before m003 has no sampler chains: they read back empty
            unchained = [dataclasses.replace(s, sampler=()) for s in steps]
            assert exact(path_messages[1].steps) == exact(unchained)
        user = history.add_user_message(convs[0], "a new turn")  # goes on after the line
        assert history.messages(convs[0])[-1].id == user
    finally:
        history.close()
