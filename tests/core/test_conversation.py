"""The conversation tree: versions, the active path, branching from a token (no Qt, no model)."""

from __future__ import annotations

import pytest

from desktop.conversation import Conversation
from desktop.engine.events import GenerationDone, Message, TokenStep


def step(index: int, token_id: int, text: str) -> TokenStep:
    return TokenStep(index, token_id, text, text, text.encode(), -0.5, 0.6, 0.6, 0, 1.0, (), 1.0)


def done(text: str, reason: str = "stop") -> GenerationDone:
    return GenerationDone(reason, text, 5, 1, 1.0, 1.0, "CPUExecutionProvider", 0)


def reply(conv: Conversation, parent, words: list[str]):
    node = conv.add_reply(parent)
    for i, word in enumerate(words):
        conv.append_step(node, step(i, 100 + i, word))
    conv.finish(node, done("".join(words)))
    return node


def test_active_path_and_messages_follow_versions():
    conv = Conversation(system_prompt="Be brief.")
    hi = conv.add_user("Hi")
    first = reply(conv, hi, ["Hel", "lo"])
    second = conv.regenerate(first)
    conv.append_step(second, step(0, 7, "Hey"))
    conv.finish(second, done("Hey"))
    assert [n.key for n in conv.path()] == [hi.key, second.key]
    assert second.version == (2, 2) and first.version == (1, 2)
    assert conv.messages() == [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hey"),
    ]
    assert conv.switch(second, -1) is first
    assert conv.messages()[-1] == Message("assistant", "Hello")
    assert conv.switch(first, -5) is first  # clamped


def test_edit_makes_a_sibling_turn_with_its_own_replies():
    conv = Conversation()
    q1 = conv.add_user("one")
    r1 = reply(conv, q1, ["a"])
    q2 = conv.add_user("two")
    reply(conv, q2, ["b"])
    q2b = conv.edit(q2, "two, edited")
    assert q2b.parent is r1 and q2b.version == (2, 2)
    assert conv.last() is q2b
    r2b = reply(conv, q2b, ["c"])
    assert [m.content for m in conv.messages()] == ["one", "a", "two, edited", "c"]
    conv.switch(q2b, -1)  # back to the first version: its own reply comes back with it
    assert [m.content for m in conv.messages()] == ["one", "a", "two", "b"]
    conv.activate(r2b)
    assert conv.last() is r2b


def test_branch_forces_the_kept_tokens_then_the_pick():
    conv = Conversation()
    q = conv.add_user("Q")
    original = reply(conv, q, ["The", " cat", " sat"])
    new, forced = conv.branch(original, 1, 555)
    assert forced == (100, 555)
    assert new.branch is not None and new.branch.replaced_id == 101
    assert new.branch.replaced_token == " cat" and new.branch.source == original.key
    assert new.version == (2, 2) and original in new.siblings
    with pytest.raises(IndexError):
        conv.branch(original, 3, 1)
    with pytest.raises(ValueError):
        conv.branch(q, 0, 1)


def test_a_failed_reply_is_not_read_and_remove_restores_the_previous_version():
    conv = Conversation()
    q = conv.add_user("Q")
    good = reply(conv, q, ["ok"])
    bad = conv.regenerate(good)
    conv.finish(bad, done("", "error"))
    assert bad.failed
    assert conv.messages() == [Message("user", "Q")]
    conv.remove(bad)
    assert conv.last() is good and good.version == (1, 1)
    with pytest.raises(KeyError):
        conv.node(bad.key)


def test_listeners_hear_each_change():
    conv = Conversation()
    heard: list[tuple[str, int]] = []
    unsubscribe = conv.subscribe(lambda change, node: heard.append((change, node.key)))
    q = conv.add_user("Q")
    r = reply(conv, q, ["x"])
    conv.switch(r, 0)
    unsubscribe()
    conv.add_user("more")
    assert heard == [
        ("added", q.key),
        ("added", r.key),
        ("updated", r.key),
        ("updated", r.key),
        ("active", r.key),
    ]
    assert [n.text for n in conv.nodes()] == ["Q", "x", "more"]
