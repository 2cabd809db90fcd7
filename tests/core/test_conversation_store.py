"""A Conversation saved node by node as it happens, then loaded back as the same tree (real
SQLite, no model)."""

from __future__ import annotations

import pytest

from desktop.conversation import Conversation
from desktop.conversation_store import (
    delete_saved,
    ensure_saved,
    load_conversation,
    save_active,
    save_message,
)
from desktop.engine.events import GenerationDone, TokenStep
from desktop.history import History


def step(index: int, token_id: int, text: str) -> TokenStep:
    return TokenStep(index, token_id, text, text, text.encode(), -0.5, 0.6, 0.6, 0, 1.0, (), 1.0)


def answer(conv: Conversation, node, words: list[str]):
    for i, word in enumerate(words):
        conv.append_step(node, step(i, 100 + i, word))
    done = GenerationDone("stop", "".join(words), 5, len(words), 1.0, 1.0, "CPU", 0)
    conv.finish(node, done)
    return node


def shape(conv: Conversation) -> list[tuple]:
    """Every node as (role, text, parent's text, active, steps, branch) in tree order."""
    out = []
    for node in conv.nodes():
        parent = node.parent.text if node.parent is not conv.root else None
        branch = None
        if node.branch is not None:
            source = conv.node(node.branch.source).text if node.branch.source else None
            branch = (source, node.branch.index, node.branch.replaced_id, node.branch.picked_id)
        active = node.parent.active_child is node
        out.append((node.role, node.text, parent, active, tuple(node.steps), branch))
    return out


@pytest.fixture
def history(tmp_path):
    with History(tmp_path / "history.sqlite3") as opened:
        yield opened


def test_a_tree_saved_as_it_happens_loads_back_the_same(history):
    conv = Conversation(system_prompt="Be brief.")
    hi = conv.add_user("Hi")
    ensure_saved(history, conv, "m")
    save_message(history, conv, hi)
    first = answer(conv, conv.add_reply(hi, "m"), ["Hel", "lo", "!"])
    save_message(history, conv, first)
    again = answer(conv, conv.regenerate(first, "m"), ["Hey"])
    save_message(history, conv, again)
    branched, forced = conv.branch(first, 1, 555, "m")
    assert forced == (100, 555)
    answer(conv, branched, ["Hel", "p", " me"])
    save_message(history, conv, branched)
    follow = conv.add_user("More?")
    save_message(history, conv, follow)
    edited = conv.edit(hi, "Hello")
    save_message(history, conv, edited)
    conv.switch(first, 0)  # back to the first version of the reply (and so to "Hi")
    save_active(history, conv, first)

    loaded = load_conversation(history, conv.id, "Be brief.")
    assert shape(loaded) == shape(conv)
    assert [n.text for n in loaded.path()] == ["Hi", "Hello!"]
    assert loaded.messages() == conv.messages()
    assert loaded.title == "Hi" and loaded.id == conv.id
    assert {n.message_id for n in loaded.nodes()} == {n.message_id for n in conv.nodes()}
    loaded_first = next(n for n in loaded.nodes() if n.message_id == first.message_id)
    assert loaded_first.version == (1, 3)


def test_a_removed_version_goes_from_the_history_too(history):
    conv = Conversation()
    hi = conv.add_user("Hi")
    ensure_saved(history, conv, "m")
    save_message(history, conv, hi)
    first = answer(conv, conv.add_reply(hi), ["a"])
    save_message(history, conv, first)
    second = answer(conv, conv.regenerate(first), ["b"])
    save_message(history, conv, second)
    delete_saved(history, conv, second)
    conv.remove(second)
    assert shape(load_conversation(history, conv.id)) == shape(conv)
    assert [n.text for n in conv.path()] == ["Hi", "a"]


def test_saving_out_of_order_is_refused(history):
    conv = Conversation()
    hi = conv.add_user("Hi")
    with pytest.raises(ValueError, match="conversation first"):
        save_message(history, conv, hi)
    ensure_saved(history, conv, "m")
    reply = conv.add_reply(hi)
    with pytest.raises(ValueError, match="before this one"):
        save_message(history, conv, answer(conv, reply, ["x"]))
    save_message(history, conv, hi)
    unfinished = conv.regenerate(reply)
    with pytest.raises(ValueError, match="finished"):
        save_message(history, conv, unfinished)
