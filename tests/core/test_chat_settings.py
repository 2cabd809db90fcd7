"""A conversation's own settings (ChatSettings) and the one rule for what the model reads, on
the Qt-free core: events, a round trip through a real SQLite file, a file from before m004, and a
follow-up in an old chat run by the real engine with that chat's system prompt."""

from __future__ import annotations

import sqlite3

import pytest

from desktop.chat_service import ChatService, RunRequest
from desktop.conversation import ChatSettings, Conversation, model_reads
from desktop.conversation_store import ensure_saved, load_conversation, save_message, save_settings
from desktop.engine.chat import load_model
from desktop.engine.events import (
    GenerationDone,
    GenerationSettings,
    Message,
    Phase,
    PromptInfo,
    TokenStep,
)
from desktop.history import History
from desktop.history_migrations import MIGRATIONS, migrate
from tests.core.test_conversation_store import answer, step

BRIEF = ChatSettings("Be brief.", GenerationSettings(temperature=0.0, max_new_tokens=4))


def done(reason: str = "stop", error: str | None = None) -> GenerationDone:
    return GenerationDone(reason, "", 5, 0, 1.0, 1.0, "CPU", 0, error=error)


def test_settings_change_tells_listeners_once_and_shape_what_the_model_reads():
    conv = Conversation(settings=BRIEF)
    seen = []
    conv.subscribe(lambda change, node: seen.append((change, node)))
    conv.set_settings(BRIEF)  # the same: nothing to tell
    conv.set_settings(ChatSettings("  Be long.\n", BRIEF.generation))
    assert seen == [("settings", conv.root)]
    conv.add_user("Q")
    assert conv.messages()[0] == Message("system", "Be long.")
    conv.system_prompt = ""  # the shorthand keeps the sampling settings
    assert conv.settings == ChatSettings("", BRIEF.generation)
    assert conv.messages() == [Message("user", "Q")]
    unrecorded = ChatSettings(None, None)
    assert not unrecorded.complete and unrecorded.with_defaults(BRIEF) == BRIEF


def test_one_rule_for_what_the_model_reads():
    conv = Conversation()
    refused_user = conv.add_user("far too long")
    conv.finish(conv.add_reply(refused_user), done("error", "too long"))
    asked = conv.add_user("Q", parent=conv.root)
    stopped = conv.add_reply(asked)
    conv.append_step(stopped, step(0, 5, "Half"))
    conv.finish(stopped, done("cancelled"))
    again = conv.add_user("Q2")
    failed_midway = conv.add_reply(again)
    conv.append_step(failed_midway, step(0, 6, "Bro"))
    conv.finish(failed_midway, done("error", "NaN logits"))
    empty = conv.regenerate(failed_midway)
    conv.finish(empty, done("cancelled"))
    assert not model_reads(refused_user) and model_reads(asked) and model_reads(stopped)
    assert not model_reads(failed_midway) and not model_reads(empty)
    assert conv.messages() == [
        Message("user", "Q"),
        Message("assistant", "Half"),
        Message("user", "Q2"),
    ]


def test_settings_round_trip_through_a_real_file(tmp_path):
    path = tmp_path / "history.sqlite3"
    with History(path) as history:
        conv = Conversation(settings=BRIEF)
        hi = conv.add_user("Hi")
        ensure_saved(history, conv, "m")
        save_message(history, conv, hi)
        save_message(history, conv, answer(conv, conv.add_reply(hi, "m"), ["Hel", "lo"]))
        conv_id = conv.id
    with History(path) as history:
        loaded = load_conversation(history, conv_id)
        assert loaded.settings == BRIEF
        loaded.set_settings(ChatSettings("Be kind.", GenerationSettings(top_k=3)))
        save_settings(history, loaded)
    with History(path) as history:
        assert load_conversation(history, conv_id).settings == loaded.settings
        overridden = load_conversation(history, conv_id, system_prompt="Be curt.")
        assert overridden.settings == ChatSettings("Be curt.", GenerationSettings(top_k=3))


def test_a_chat_from_before_m004_loads_with_its_last_settings_and_no_recorded_prompt(tmp_path):
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:3])  # the schema as the previous version left it
    db.execute("INSERT INTO conversations VALUES (1, 'old', 'm', '2026-01-01', '2026-01-01')")
    db.execute(
        "INSERT INTO messages (id, conversation_id, role, text, created_at) "
        "VALUES (1, 1, 'user', 'Hi', '2026-01-01')"
    )
    db.execute(
        "INSERT INTO messages (id, conversation_id, role, text, created_at, finish_reason, "
        "settings, seed, provider, prompt_tokens, completion_tokens, dropped_messages, ttft_ms, "
        "decode_tokens_per_s, parent_id) VALUES (2, 1, 'assistant', 'Yo', '2026-01-01', "
        "'stop', '{\"temperature\": 0.25}', '1', 'CPU', 3, 1, 0, 1.0, 0.0, 1)"
    )
    db.close()
    with History(path) as history:
        loaded = load_conversation(history, 1)
    assert loaded.settings == ChatSettings(None, GenerationSettings(temperature=0.25))
    assert loaded.system_prompt == ""  # the CLI's reading of "not recorded": none


@pytest.fixture
def tiny(tiny_llama_dir):
    model = load_model(tiny_llama_dir)
    yield model
    model.close()


def test_an_old_chats_follow_up_is_sent_with_its_own_prompt_after_the_default_changed(
    tmp_path, tiny
):
    """The chat was started with "Be brief."; its follow-up, loaded from the file by a client
    that knows no system prompt of its own, is run with "Be brief." (the engine's tokenize
    record). The window's side (its default changed meanwhile): tests/ui/test_chat_settings.py."""
    path = tmp_path / "history.sqlite3"
    service = ChatService(tiny)
    try:
        with History(path) as history:
            conv = Conversation(settings=BRIEF)
            hi = conv.add_user("Hi")
            ensure_saved(history, conv, tiny.name)
            save_message(history, conv, hi)
            first = run(service, conv, hi)
            save_message(history, conv, first)
        with History(path) as history:
            old = load_conversation(history, conv.id)  # the defaults play no part
            more = old.add_user("More")
            reply = run(service, old, more)
    finally:
        service.close()
    (tokenize,) = [p for p in reply.phases if p.phase == "tokenize"]
    expected = [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", first.text),
        Message("user", "More"),
    ]
    assert list(tokenize.ids) == list(tiny.render_prompt(expected, 4).prompt_ids)
    assert "Be brief." in reply.prompt.prompt_text


def run(service: ChatService, conv: Conversation, user):
    """Run the reply to `user` with the conversation's own settings; returns the reply node."""
    reply = conv.add_reply(user, "tiny")
    request = RunRequest(tuple(conv.messages(until=user)), conv.settings.generation)
    for record in service.submit(request):
        if isinstance(record, PromptInfo):
            conv.set_prompt(reply, record)
        elif isinstance(record, Phase):
            conv.add_phase(reply, record)
        elif isinstance(record, GenerationDone):
            conv.finish(reply, record)
        elif isinstance(record, TokenStep):  # (PrefillProgress records are for the screen)
            conv.append_step(reply, record)
    return reply
