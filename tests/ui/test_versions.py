"""Versions and branches in the real window, around the scripted model: Regenerate and Edit keep
the old version, "‹ 2/3 ›" and Alt+Left / Alt+Right switch, switching re-renders the turns after
the switched message and the model reads the active path; clicking (or Enter on) an alternative
in the inspector continues the reply from that token, the picked token is outlined and its tooltip
says what it replaced; Stop works on a branch as on any reply."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from desktop.ui.messages import ErrorBanner
from tests.ui.test_edit_in_place import send_edit
from tests.ui.test_window import send_and_wait


def turns(built):
    return built.controller.transcript.turns


def reply_rows(built):
    return [t for t in turns(built) if t.role == "assistant"]


def stored(built):
    conv = built.controller.session.conversation_id
    return [(m.role, m.text) for m in built.history.messages(conv)]


def focus_and_key(qtbot, built, widget, key):
    """Alt+arrow on a bubble that has the keyboard focus (its token view)."""
    built.window.activateWindow()
    qtbot.waitUntil(lambda: built.window.isActiveWindow())
    widget.body.setFocus()
    qtbot.waitUntil(lambda: widget.body.hasFocus())
    qtbot.keyClick(widget.body, key, Qt.KeyboardModifier.AltModifier)


def test_regenerate_keeps_the_old_version_and_arrows_switch(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    built.model.reply = [("Again", 0.7)]
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        built.controller.runs.regenerate()
    (row,) = reply_rows(built)
    versions = row.widget.versions
    assert row.widget.text == "Again"
    assert versions.isVisibleTo(built.window) and versions.label.text() == "2/2"
    assert versions.previous.isEnabled() and not versions.next.isEnabled()
    assert stored(built) == [("user", "hi"), ("assistant", "Again")]
    # The "‹" button shows the first version again, and the history follows the active path.
    qtbot.mouseClick(versions.previous, Qt.MouseButton.LeftButton)
    (row,) = reply_rows(built)
    assert row.widget.text == "Hello, world!" and row.widget.versions.label.text() == "1/2"
    assert stored(built) == [("user", "hi"), ("assistant", "Hello, world!")]
    # Alt+Right on the focused reply goes to the next version.
    focus_and_key(qtbot, built, row.widget, Qt.Key.Key_Right)
    (row,) = reply_rows(built)
    assert row.widget.text == "Again" and row.widget.versions.label.text() == "2/2"
    # The model reads the active path.
    send_and_wait(qtbot, built, "next")
    assert [(m.role, m.content) for m in built.model.calls[-1]] == [
        ("user", "hi"),
        ("assistant", "Again"),
        ("user", "next"),
    ]


def test_switching_a_version_re_renders_the_turns_after_it(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    built.model.reply = [("Again", 0.7)]
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        built.controller.runs.regenerate()
    built.model.reply = [("Later", 0.9)]
    send_and_wait(qtbot, built, "and then?")
    before = [t.widget for t in turns(built)]
    drawn_before = before[3].steps
    assert [t.text for t in turns(built)] == ["hi", "Again", "and then?", "Later"]
    # Version 1 of the first reply has no later turns: they leave the screen.
    focus_and_key(qtbot, built, before[1], Qt.Key.Key_Left)
    assert [t.text for t in turns(built)] == ["hi", "Hello, world!"]
    assert turns(built)[0].widget is before[0]  # the turn before the switched one stays
    assert turns(built)[1].widget is not before[1]
    assert stored(built) == [("user", "hi"), ("assistant", "Hello, world!")]
    # Back to version 2: its later turns come back, drawn anew from the conversation.
    focus_and_key(qtbot, built, turns(built)[1].widget, Qt.Key.Key_Right)
    after = [t.widget for t in turns(built)]
    assert [t.text for t in turns(built)] == ["hi", "Again", "and then?", "Later"]
    assert after[0] is before[0] and all(
        a is not b for a, b in zip(after[1:], before[1:], strict=True)
    )
    assert after[3].steps == drawn_before == turns(built)[3].node.steps
    assert stored(built) == [
        ("user", "hi"),
        ("assistant", "Again"),
        ("user", "and then?"),
        ("assistant", "Later"),
    ]
    # A message sent on version 1 continues that version: the model reads its path.
    qtbot.mouseClick(turns(built)[1].widget.versions.previous, Qt.MouseButton.LeftButton)
    send_and_wait(qtbot, built, "other way")
    assert [m.content for m in built.model.calls[-1]] == ["hi", "Hello, world!", "other way"]


def test_editing_a_message_makes_a_new_version_with_its_own_replies(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "one")
    built.model.reply = [("Two-reply", 0.9)]
    send_and_wait(qtbot, built, "two")
    user_two = turns(built)[2].widget
    qtbot.mouseClick(user_two.edit_button, Qt.MouseButton.LeftButton)
    assert built.controller.editing.editor.box.toPlainText() == "two"
    built.model.reply = [("Edited-reply", 0.9)]
    send_edit(qtbot, built.controller, "two, edited", timeout=10000)
    assert [t.text for t in turns(built)] == ["one", "Hello, world!", "two, edited", "Edited-reply"]
    assert turns(built)[2].widget.versions.label.text() == "2/2"
    assert not turns(built)[3].widget.versions.isVisibleTo(built.window)  # one reply per version
    # Alt+Left on the edited message shows the first version with its own reply.
    focus_and_key(qtbot, built, turns(built)[2].widget, Qt.Key.Key_Left)
    assert [t.text for t in turns(built)] == ["one", "Hello, world!", "two", "Two-reply"]
    assert turns(built)[2].widget.versions.label.text() == "1/2"
    assert stored(built)[2:] == [("user", "two"), ("assistant", "Two-reply")]


def alternative_row_point(chart, row: int) -> QPoint:
    return QPoint(chart.width() // 2, int(chart._top() + (row + 0.5) * chart.row_height()))


def test_clicking_an_alternative_continues_the_reply_from_that_token(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    original_node = reply_rows(built)[0].node
    original = list(original_node.steps)
    calls_before = len(built.model.calls)
    # Pin token 1 (",", p 0.6; alternatives "alt" and " other" at 0.2 each).
    reply_rows(built)[0].widget.body.select_span(1, emit=True)
    chart = built.window.inspector.alternatives
    assert [a.token for a in chart._alternatives] == [",", "alt", " other"]
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=alternative_row_point(chart, 1))
    # It ran at once, on the same conversation, with the kept token then the picked one forced.
    assert len(built.model.calls) == calls_before + 1
    assert built.model.calls[-1] == built.model.calls[calls_before - 1]
    assert built.model.forced_calls[-1] == (original[0].id, 1)
    (row,) = reply_rows(built)
    steps = row.node.steps
    assert row.widget.text == "Helloalt then more"
    assert row.widget.versions.label.text() == "2/2"
    assert steps[0].id == original[0].id and steps[0].prob == original[0].prob
    assert steps[0].forced and not steps[0].picked
    assert steps[1].picked and steps[1].id == 1
    assert steps[1].prob == next(a.prob for a in original[1].top if a.id == 1) == 0.2
    assert not getattr(steps[2], "forced", False)
    # The picked token is outlined, its tooltip says what it replaced; no other token is marked.
    assert row.widget.body.marked == {1}
    assert row.widget.body.spans[1].tooltip.startswith("<b>Picked by you</b> in place of ")
    assert "<code>,</code>" in row.widget.body.spans[1].tooltip
    assert "Picked by you" not in row.widget.body.spans[0].tooltip
    row.widget.body.select_span(1, emit=True)
    assert "picked by you in place of <b>,</b>" in built.window.inspector.title.text()
    assert stored(built) == [("user", "hi"), ("assistant", "Helloalt then more")]
    # The original is kept: "‹" shows it again, with nothing outlined.
    qtbot.mouseClick(row.widget.versions.previous, Qt.MouseButton.LeftButton)
    (row,) = reply_rows(built)
    assert row.node is original_node and row.widget.text == "Hello, world!"
    assert row.widget.body.marked == set()


def test_enter_on_a_focused_alternative_branches_and_stop_works(qtbot, scripted_window):
    built = scripted_window
    built.model.reply = [(f"w{i} ", 0.6) for i in range(10)]
    send_and_wait(qtbot, built, "count")
    reply_rows(built)[0].widget.body.select_span(4, emit=True)
    built.model.branch_reply = [(f"b{i} ", 0.5) for i in range(400)]
    built.model.delay_s = 0.01
    chart = built.window.inspector.alternatives
    chart.setFocus()
    qtbot.keyClick(chart, Qt.Key.Key_Down)  # row 0: the chosen token (Enter does nothing)
    qtbot.keyClick(chart, Qt.Key.Key_Return)
    assert built.controller.runs.run is None
    qtbot.keyClick(chart, Qt.Key.Key_Down)
    qtbot.keyClick(chart, Qt.Key.Key_Down)  # row 2: " other"
    qtbot.keyClick(chart, Qt.Key.Key_Return)
    run = built.controller.runs.run
    assert run is not None and built.window.chat.stop_button.isVisibleTo(built.window)
    qtbot.waitUntil(lambda: len(run.reply.steps) >= 8, timeout=5000)
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000) as blocker:
        qtbot.mouseClick(built.window.chat.stop_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0].finish_reason == "cancelled"
    (row,) = reply_rows(built)
    assert built.model.forced_calls[-1] == (100, 101, 102, 103, 2)
    assert row.node.steps[4].token == " other" and row.node.steps[4].picked
    assert 8 <= len(row.node.steps) < 405
    assert row.widget.footer.text().endswith("· stopped")
    assert row.widget.versions.label.text() == "2/2"
    assert stored(built)[1] == ("assistant", row.node.text)


def test_a_tokens_context_menu_continues_from_an_alternative(qtbot, scripted_window):
    """Tooltips hold no buttons: a right-click on a token offers its alternatives."""
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    widget = reply_rows(built)[0].widget
    assert "Right-click: continue from here with another token" in widget.body.spans[2].tooltip
    menu = widget.token_menu(2)
    actions = menu.actions()
    assert [a.text() for a in actions] == [
        "Continue from here with “alt” (35.0 %)",
        "Continue from here with “·other” (35.0 %)",
    ]
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        actions[1].trigger()
    assert built.model.forced_calls[-1] == (100, 101, 2)
    (row,) = reply_rows(built)
    assert row.widget.text == "Hello, other then more" and row.widget.body.marked == {2}


def test_a_restart_shows_the_same_versions(qtbot, qapp_theme, tmp_path):
    """Versions made in one window (a regenerated reply, a reply branched from a token, a turn
    after the branch) are all back after the window is closed and built again on the same
    history file: the same active path, "‹ 3/3 ›", and the branched reply keeps its outline."""
    from desktop.history import History
    from desktop.ui import settings_store
    from desktop.ui.app import build
    from tests.ui.conftest import Built
    from tests.ui.scripted_model import ScriptedModel, scripted_loader

    path = tmp_path / "history.sqlite3"

    def open_window(history: History) -> Built:
        model = ScriptedModel()
        window, controller = build(scripted_loader(model), None, history, settings_store.load())
        qtbot.addWidget(window)
        window.show()
        with qtbot.waitSignal(controller.models.model_ready, timeout=5000):
            controller.models.open_model(None)
        return Built(window, controller, model, history)

    history = History(path)
    built = open_window(history)
    send_and_wait(qtbot, built, "hi")
    first = built.model.reply
    built.model.reply = [("Again", 0.7)]
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        built.controller.runs.regenerate()
    built.model.reply = first
    qtbot.mouseClick(reply_rows(built)[0].widget.versions.previous, Qt.MouseButton.LeftButton)
    reply_rows(built)[0].widget.body.select_span(1, emit=True)
    chart = built.window.inspector.alternatives
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=alternative_row_point(chart, 1))
    send_and_wait(qtbot, built, "next")
    conv_id = built.controller.session.conversation_id
    shown = [(t.role, t.text) for t in turns(built)]
    branched_ids = [s.id for s in reply_rows(built)[0].node.steps]
    assert shown[1] == ("assistant", "Helloalt then more") and len(shown) == 4
    built.window.close()
    built.controller.lifetime.shutdown()
    history.close()

    history = History(path)
    try:
        again = open_window(history)
        again.controller.chats.open_conversation(conv_id)
        assert [(t.role, t.text) for t in turns(again)] == shown  # the active path as it was
        row = reply_rows(again)[0]
        assert row.widget.versions.label.text() == "3/3"
        assert [s.id for s in row.node.steps] == branched_ids
        assert row.node.steps[1].picked and row.node.branch is not None
        assert row.widget.body.marked == {1}  # the branched reply keeps its outline
        assert "<code>,</code>" in row.widget.body.spans[1].tooltip
        qtbot.mouseClick(row.widget.versions.previous, Qt.MouseButton.LeftButton)
        row = reply_rows(again)[0]
        assert row.widget.text == "Again" and row.widget.versions.label.text() == "2/3"
        assert [t.text for t in turns(again)] == ["hi", "Again"]
        qtbot.mouseClick(row.widget.versions.previous, Qt.MouseButton.LeftButton)
        row = reply_rows(again)[0]
        assert row.widget.text == "Hello, world!" and row.widget.versions.label.text() == "1/3"
        assert row.widget.body.marked == set()
        again.controller.lifetime.shutdown()
    finally:
        history.close()


def test_replies_are_saved_on_the_service_thread(qtbot, scripted_window, monkeypatch):
    """A finished reply (a new one, a regenerated one) is written by the chat service's `finish`,
    off the GUI thread, once; the reply gets its message id."""
    import threading

    built = scripted_window
    save = built.history.add_assistant_message
    threads: list[bool] = []

    def recording(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return save(*args, **kwargs)

    monkeypatch.setattr(built.history, "add_assistant_message", recording)
    send_and_wait(qtbot, built, "hi")
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        built.controller.runs.regenerate()
    assert threads == [False, False]  # each reply saved once, never on the GUI thread
    (row,) = reply_rows(built)
    conv = built.controller.session.conversation_id
    stored_ids = [m.id for m in built.history.tree(conv) if m.role == "assistant"]
    assert row.node.message_id == stored_ids[-1] and len(stored_ids) == 2


def test_a_branch_samples_with_the_replys_own_settings_not_the_panels(qtbot, scripted_window):
    # README: the rest is generated with the reply's settings (as `tokenglass branch` does). A
    # greedy reply continued after the panel was set to 0.8 must stay greedy.
    built = scripted_window
    built.window.settings.temperature.setValue(0.0)
    built.window.settings.max_new_tokens.setValue(7)
    send_and_wait(qtbot, built, "hi")
    original = reply_rows(built)[0].node
    assert original.done.settings.temperature == 0.0
    built.window.settings.temperature.setValue(0.8)
    built.window.settings.max_new_tokens.setValue(50)
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        assert built.controller.runs.branch(original, 1, 1)
    (row,) = reply_rows(built)
    assert row.node is not original and row.node.branch is not None
    assert row.node.done.settings == original.done.settings
    assert row.node.done.settings.temperature == 0.0
    assert row.node.done.settings.max_new_tokens == 7
    # The panel's settings are still what the next new reply gets.
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        built.controller.runs.regenerate()
    assert reply_rows(built)[0].node.done.settings.temperature == 0.8


def test_the_prompt_view_of_a_reply_made_by_another_model_is_not_labelled_by_this_one(
    qtbot, scripted_window
):
    # QA: after a restart on another model, a saved reply's prompt ids were labelled by the
    # loaded model's tokenizer ('</s>' and empty tokens for SmolLM2 ids under the dates T5).
    built = scripted_window
    send_and_wait(qtbot, built, "hi there")
    user = next(t for t in turns(built) if t.role == "user")
    user.widget.mode_buttons["prompt"].click()
    assert user.widget.info.text().startswith("The whole prompt")
    user.widget.mode_buttons["text"].click()
    built.model.name = "another-model"  # what is loaded now is not what made the reply
    user.widget.mode_buttons["prompt"].click()
    assert user.widget.info.text() == ""  # shown as text, not as wrongly labelled tokens
    assert "made by scripted" in built.window.statusBar().currentMessage()


def test_a_reply_made_by_another_model_is_not_continued_by_the_loaded_one(qtbot, scripted_window):
    # QA: after a restart on another model, picking an alternative of a saved reply forced its
    # ids into the loaded model (another vocabulary): the engine said "Token id 39393 is not in
    # t5-dates-iso8601's vocabulary", or, with two large vocabularies, it would run wrong ids.
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    (row,) = reply_rows(built)
    calls = len(built.model.calls)
    built.model.name = "another-model"
    assert not built.controller.runs.branch(row.node, 1, 1)
    assert len(built.model.calls) == calls  # nothing ran
    (row,) = reply_rows(built)
    assert row.widget.versions.label.text() == "1/1" and not row.widget.versions.isVisible()
    banner = built.window.findChildren(ErrorBanner)[-1]
    assert "made by scripted" in banner.text() and "another-model is loaded" in banner.text()
    assert stored(built) == [("user", "hi"), ("assistant", "Hello, world!")]
