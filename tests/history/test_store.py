"""Conversations and their per-token records: exact round trip, list, rename, delete, search."""

from __future__ import annotations

import math
import sqlite3

import pytest

from desktop.engine.events import Alternative, GenerationSettings, TokenStep
from desktop.history import History, HistoryError, default_title, save_cli_turn
from tests.history.records import exact, make_done, make_phases, make_prompt, make_steps


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "history.sqlite3"


def test_conversation_with_token_records_round_trips_exactly(db_path):
    steps = make_steps(40, top=5)
    done = make_done(steps)
    prompt = make_prompt()
    with History(db_path) as history:
        conv = history.create_conversation("Exact floats", "SmolLM2-135M-Instruct")
        user_id = history.add_user_message(conv, "Hi 😀\x00 there")
        reply_id = history.add_assistant_message(
            conv, done, steps, "SmolLM2-135M-Instruct", prompt, phases=make_phases()
        )

    with History(db_path) as history:  # a new connection: nothing comes from memory
        user, reply = history.messages(conv)

    assert (user.id, user.role, user.text, user.done, user.steps) == (
        user_id,
        "user",
        "Hi 😀\x00 there",
        None,
        (),
    )
    assert reply.id == reply_id and reply.role == "assistant" and not reply.partial
    assert reply.steps == steps
    assert exact(reply.steps) == exact(steps)  # bit for bit: -0.0 stays -0.0, 5e-324 stays
    assert math.copysign(1.0, reply.steps[0].entropy) == -1.0
    assert all(type(s.top) is tuple and type(s.bytes) is bytes for s in reply.steps)
    assert reply.steps[1].top[1].bytes == "🤗".encode()
    assert reply.steps[2].top[2].bytes == b"\xf0\x9f"
    assert reply.steps[0].top[-1].logprob == -math.inf
    assert reply.done == done and exact(reply.done) == exact(done)
    assert reply.settings == done.settings and reply.settings.stop_strings == ("\n\n", "User:")
    assert reply.seed == 2**64 - 1 and reply.provider == "CPUExecutionProvider"
    assert reply.prompt == prompt
    assert reply.phases == make_phases() and exact(reply.phases) == exact(make_phases())
    assert all(type(p.ids) is tuple for p in reply.phases)
    assert reply.steps[2].sampler == (steps[2].sampler) and len(reply.steps[2].sampler) == 1
    assert reply.model == "SmolLM2-135M-Instruct"
    assert reply.text == done.text


def test_numpy_scalars_are_stored_as_python_numbers(db_path):
    np = pytest.importorskip("numpy")
    step = TokenStep(
        index=0,
        id=np.int64(7),
        token="a",
        text="a",
        bytes=b"a",
        logprob=np.float32(-0.25),
        prob=np.float32(0.7788008),
        sampling_prob=np.float64(1.0),
        rank=np.int64(0),
        entropy=np.float32(0.5),
        top=(Alternative(np.int64(7), "a", b"a", np.float32(-0.25), np.float32(0.77), 1.0),),
        step_ms=np.float64(3.5),
    )
    with History(db_path) as history:
        conv = history.create_conversation("np", "m")
        history.add_assistant_message(conv, make_done((step,)), [step], "m")
        (stored,) = history.messages(conv)
    assert stored.steps[0].logprob == float(np.float32(-0.25))
    assert stored.steps[0].prob == float(np.float32(0.7788008))
    assert type(stored.steps[0].id) is int and type(stored.steps[0].prob) is float


def test_nan_comes_back_as_nan(db_path):
    (step,) = make_steps(1, top=1)
    step = TokenStep(**{**step.__dict__, "entropy": math.nan})
    with History(db_path) as history:
        conv = history.create_conversation("nan", "m")
        history.add_assistant_message(conv, make_done((step,)), [step], "m")
        assert math.isnan(history.messages(conv)[0].steps[0].entropy)


def test_cancelled_reply_is_saved_as_partial(db_path):
    steps = make_steps(3)
    with History(db_path) as history:
        conv = history.create_conversation("stop", "m")
        history.add_assistant_message(conv, make_done(steps, "cancelled"), steps, "m")
        history.add_assistant_message(conv, make_done(steps, "length"), steps, "m", partial=True)
        history.add_assistant_message(conv, make_done(steps, "stop"), steps, "m")
        assert [m.partial for m in history.messages(conv)] == [True, True, False]
        assert history.messages(conv)[0].done.finish_reason == "cancelled"


def test_list_newest_first_with_counts_rename_and_delete(db_path):
    with History(db_path) as history:
        first = history.create_conversation("First", "m1")
        second = history.create_conversation("Second", "m2")
        history.add_user_message(first, "bump first to the top")
        listed = history.list_conversations()
        assert [(c.id, c.title, c.model, c.message_count) for c in listed] == [
            (first, "First", "m1", 1),
            (second, "Second", "m2", 0),
        ]
        assert listed[0].updated_at >= listed[0].created_at
        assert listed[0].updated_at.utcoffset().total_seconds() == 0

        history.rename_conversation(second, "  Renamed\n chat ")
        assert history.conversation(second).title == "Renamed chat"
        assert [c.id for c in history.list_conversations()] == [first, second]  # order kept
        with pytest.raises(HistoryError):
            history.rename_conversation(second, "   ")

        steps = make_steps(6)
        history.add_assistant_message(first, make_done(steps), steps, "m1")
        history.delete_conversation(first)
        assert [c.id for c in history.list_conversations()] == [second]
        with pytest.raises(HistoryError, match=f"no saved conversation with id {first}"):
            history.messages(first)
        with pytest.raises(HistoryError):
            history.add_user_message(first, "into the void")
    raw = sqlite3.connect(db_path)  # the token records went with it (ON DELETE CASCADE)
    assert raw.execute("SELECT count(*) FROM token_steps").fetchone() == (0,)
    assert raw.execute("SELECT count(*) FROM alternatives").fetchone() == (0,)
    raw.close()


def test_search_finds_a_message_by_a_word(db_path):
    with History(db_path) as history:
        cooking = history.create_conversation("Dinner", "m")
        history.add_user_message(cooking, "How long should I boil an egg?")
        steps = make_steps(2)
        history.add_assistant_message(cooking, make_done(steps), steps, "m")
        travel = history.create_conversation("Trip", "m")
        history.add_user_message(travel, "Über die Straße nach KÖLN")
        history.create_conversation("Empty", "m")

        assert [c.id for c in history.list_conversations(search="egg")] == [cooking]
        assert [c.id for c in history.list_conversations(search="BOIL")] == [cooking]
        assert [c.id for c in history.list_conversations(search="köln")] == [travel]
        assert [c.id for c in history.list_conversations(search="strasse")] == [travel]
        assert [c.id for c in history.list_conversations(search="trip")] == [travel]  # title
        assert history.list_conversations(search="%") == []  # no LIKE wildcards
        assert history.list_conversations(search="zebra") == []
        assert len(history.list_conversations(search="  ")) == 3


def test_save_cli_turn_starts_then_continues_a_conversation(db_path):
    steps = make_steps(3)
    with History(db_path) as history:
        conv = save_cli_turn(history, None, "Tell me a joke\nplease", make_done(steps), steps, "m")
        again = save_cli_turn(history, conv, "another", make_done(steps, "cancelled"), steps, "m")
        assert again == conv
        assert history.conversation(conv).title == "Tell me a joke"
        messages = history.messages(conv)
        assert [(m.role, m.partial) for m in messages] == [
            ("user", False),
            ("assistant", False),
            ("user", False),
            ("assistant", True),
        ]
        assert messages[1].steps == steps


def test_default_title():
    assert default_title("\n\n  Hello there  \nsecond line") == "Hello there"
    assert default_title("   ") == "New chat"
    long = default_title("word " * 40)
    assert len(long) == 60 and long.endswith("…")


def test_settings_from_a_newer_version_ignore_unknown_keys(db_path):
    steps = make_steps(1)
    with History(db_path) as history:
        conv = history.create_conversation("s", "m")
        mid = history.add_assistant_message(conv, make_done(steps), steps, "m")
        history._db.execute(
            "UPDATE messages SET settings = ? WHERE id = ?",
            ('{"temperature": 0.0, "typical_p": 0.9, "stop_ids": [5]}', mid),
        )
        settings = history.messages(conv)[0].settings
    assert settings == GenerationSettings(temperature=0.0, stop_ids=(5,))
