"""Chats through the server are saved in the history with their token records; a follow-up that
sends the conversation back continues it; `--no-save` saves nothing."""

from __future__ import annotations

from desktop.history import History


def test_a_chat_and_its_follow_up_are_one_saved_conversation(client, server):
    first_text = "Saved question about foxes"
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": first_text},
    ]
    asked = {"model": server.model, "temperature": 0, "max_tokens": 6, "logprobs": True}
    first = client.chat.completions.create(messages=messages, **asked)
    content = first.choices[0].message.content
    follow_up = [
        *messages,
        {"role": "assistant", "content": content.strip()},  # clients may trim what they send back
        {"role": "user", "content": "And a follow-up"},
    ]
    second = client.chat.completions.create(messages=follow_up, **asked)
    with History(server.home / "history.sqlite3") as history:
        found = history.list_conversations(first_text)
        assert len(found) == 1 and found[0].model == server.model
        assert found[0].system_prompt == "You are terse."  # the chat's own (migration m004)
        assert found[0].settings.temperature == 0 and found[0].settings.max_new_tokens == 6
        saved = history.messages(found[0].id)
    assert [(m.role, m.text) for m in saved] == [
        ("user", first_text),
        ("assistant", content),
        ("user", "And a follow-up"),
        ("assistant", second.choices[0].message.content),
    ]
    ids = [e.model_extra["id"] for e in first.choices[0].logprobs.content]
    assert [s.id for s in saved[1].steps] == ids and len(saved[1].steps[0].top) == 10


def test_a_conversation_the_server_did_not_answer_starts_a_new_one(client, server):
    messages = [
        {"role": "user", "content": "Elsewhere question"},
        {"role": "assistant", "content": "an answer from another server"},
        {"role": "user", "content": "Elsewhere follow-up"},
    ]
    client.chat.completions.create(model=server.model, messages=messages, max_tokens=3)
    with History(server.home / "history.sqlite3") as history:
        found = history.list_conversations("Elsewhere")
        assert [c.title for c in found] == ["Elsewhere follow-up"]
        assert [m.role for m in history.messages(found[0].id)] == ["user", "assistant"]


def test_no_save_saves_nothing(long_server):
    body = {"model": long_server.model, "messages": [{"role": "user", "content": "Hi"}]}
    status, _, _ = long_server.request("POST", "/chat/completions", {**body, "max_tokens": 2})
    assert status == 200
    database = long_server.home / "history.sqlite3"
    if database.exists():
        with History(database) as history:
            assert history.list_conversations() == []
