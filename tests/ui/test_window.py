"""The real window driven through its widgets, around the scripted model (exact tokens and
timing): keys, send/stop/regenerate/edit, reading state, footer, status bar, token spans and their
probabilities, tooltip, inspector, keyboard navigation, user tokens, history, settings, errors."""

from __future__ import annotations

import dataclasses
import json
import time

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication, QInputDialog

from desktop import paths
from desktop.ui import theme
from desktop.ui.messages import AssistantMessageWidget, ErrorBanner, UserMessageWidget
from desktop.ui.token_view import marked_text
from tests.ui.scripted_model import ScriptedModel
from tests.ui.test_edit_in_place import send_edit


def send_and_wait(qtbot, built, text: str, timeout: int = 10000):
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=timeout) as blocker:
        built.window.chat.input.setPlainText(text)
        qtbot.keyClick(built.window.chat.input, Qt.Key.Key_Return)
    return blocker.args[0]


def replies(built) -> list[AssistantMessageWidget]:
    return [t.widget for t in built.controller.transcript.turns if t.role == "assistant"]


def span_background(view, index: int):
    span = view.spans[index]
    cursor = QTextCursor(view.document())
    cursor.setPosition(span.start + 1)
    return cursor.charFormat()


def test_enter_sends_and_reply_streams_with_probabilities(qtbot, scripted_window):
    built = scripted_window
    done = send_and_wait(qtbot, built, "Hello there")
    reply = replies(built)[-1]
    assert reply.text == "Hello, world!"
    assert [s.prob for s in reply.steps] == [0.95, 0.6, 0.3, 0.02]
    # Each span's background is its probability's bin colour; low ones carry an underline style.
    for index, step in enumerate(reply.steps):
        fmt = span_background(reply.body, index)
        assert fmt.background().color().name() == theme.probability_bin(step.prob).light
        assert fmt.underlineStyle() == theme.probability_bin(step.prob).underline
    assert span_background(reply.body, 3).underlineStyle() == fmt.UnderlineStyle.WaveUnderline
    # Footer and status bar.
    assert reply.footer.text() == (
        "4 tokens · TTFT 5 ms · 100.0 tokens/s · CPUExecutionProvider · seed 1234"
    )
    assert done.completion_tokens == 4
    assert built.window.model_label.text() == "scripted"
    assert built.window.provider_label.text() == "CPU"
    assert built.window.context_label.text() == f"context {done.prompt_tokens + 4} / 2048"
    assert built.model.calls[-1][-1].content == "Hello there"


def test_message_box_has_focus_when_the_window_opens(qtbot, scripted_window):
    scripted_window.window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is scripted_window.window.chat.input)


def test_shift_enter_makes_a_new_line(qtbot, scripted_window):
    box = scripted_window.window.chat.input
    box.setPlainText("line one")
    box.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(box, "two")
    assert box.toPlainText() == "line one\ntwo"
    assert scripted_window.controller.transcript.turns == []


def test_tab_in_the_message_box_moves_the_focus(qtbot, scripted_window):
    # Issue 15: Tab inserted a tab character, so a keyboard user could not leave the box.
    box = scripted_window.window.chat.input
    scripted_window.window.activateWindow()
    box.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is box)
    box.setPlainText("hi")
    qtbot.keyClick(box, Qt.Key.Key_Tab)
    assert box.toPlainText() == "hi"
    assert QApplication.focusWidget() is not box


def test_reading_state_shows_prompt_token_count(qtbot, scripted_window):
    built = scripted_window
    built.model.reply = [("a", 0.5)] * 50
    built.model.delay_s = 0.3  # the first token comes after 0.3 s
    built.controller.runs.send("count me")
    reply = replies(built)[-1]
    qtbot.waitUntil(lambda: "prompt tokens" in reply.reading.text(), timeout=5000)
    prompt = built.controller.transcript.turns[-1].prompt
    assert reply.reading.text() == f"Reading your message… ({len(prompt.prompt_ids)} prompt tokens)"
    assert reply.reading.isVisible() and not reply.steps
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=10000):
        qtbot.keyClick(built.window.chat.input, Qt.Key.Key_Escape)
    assert not reply.reading.isVisible()


def test_esc_stops_mid_reply_keeps_partial_and_saves_it(qtbot, scripted_window):
    built = scripted_window
    built.model.reply = [(f"w{i} ", 0.5) for i in range(400)]
    built.model.delay_s = 0.01
    built.controller.runs.send("go on and on")
    assert built.window.chat.stop_button.isVisibleTo(built.window)
    qtbot.waitUntil(lambda: len(replies(built)[-1].steps) >= 5, timeout=5000)
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000) as blocker:
        qtbot.keyClick(built.window.chat.input, Qt.Key.Key_Escape)
    done = blocker.args[0]
    reply = replies(built)[-1]
    assert done.finish_reason == "cancelled"
    assert 5 <= len(reply.steps) < 400
    assert reply.footer.text().endswith("· stopped")
    qtbot.waitUntil(lambda: not built.controller.runs.busy, timeout=5000)
    assert built.window.chat.send_button.isVisibleTo(built.window)
    stored = built.history.messages(built.controller.session.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].partial and stored[1].text == reply.text
    assert len(stored[1].steps) == len(reply.steps)


def test_regenerate_replaces_the_last_reply(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "first")
    built.model.reply = [("Again", 0.7)]
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        qtbot.mouseClick(built.window.chat.regenerate_button, Qt.MouseButton.LeftButton)
    assert [r.text for r in replies(built)] == ["Again"]
    assert built.model.calls[-1] == built.model.calls[-2]  # same conversation sent again
    stored = built.history.messages(built.controller.session.conversation_id)
    assert [(m.role, m.text) for m in stored] == [("user", "first"), ("assistant", "Again")]


def test_edit_and_resend(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "helo")
    qtbot.mouseClick(built.window.chat.edit_button, Qt.MouseButton.LeftButton)
    assert built.controller.editing.editor.box.toPlainText() == "helo"
    assert [t.role for t in built.controller.transcript.turns] == ["user", "assistant"]
    send_edit(qtbot, built.controller, "hello", timeout=10000)
    stored = built.history.messages(built.controller.session.conversation_id)
    assert [(m.role, m.text) for m in stored] == [("user", "hello"), ("assistant", "Hello, world!")]


def test_second_turn_sends_the_history(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "one")
    send_and_wait(qtbot, built, "two")
    sent = built.model.calls[-1]
    assert [(m.role, m.content) for m in sent] == [
        ("user", "one"),
        ("assistant", "Hello, world!"),
        ("user", "two"),
    ]


def test_bubbles_fit_a_narrow_window_without_sideways_scrolling(qtbot, scripted_window):
    built = scripted_window
    built.window.resize(1100, 700)  # a chat column of about 460 px between the docks
    built.model.settings = dataclasses.replace(built.model.settings, seed=2**31 - 1)
    built.controller.models.open_model(None)  # a 10-digit seed makes the footer long
    qtbot.wait(50)
    send_and_wait(qtbot, built, "Hi")
    chat = built.window.chat
    viewport = chat.scroll.viewport().width()
    qtbot.waitUntil(lambda: chat.column_widget.width() <= viewport)
    for turn in built.controller.transcript.turns:
        assert turn.widget.geometry().right() < viewport, turn.role


def test_new_chat_clears_and_copy_copies(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    built.window.copy_reply_action.trigger()
    assert QApplication.clipboard().text() == "Hello, world!"
    built.window.new_chat_action.trigger()
    assert (
        built.controller.transcript.turns == [] and built.controller.session.conversation_id is None
    )
    assert built.window.chat.empty.isVisibleTo(built.window)


def test_tooltip_click_and_arrow_keys_pin_tokens_in_the_inspector(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    reply = replies(built)[-1]
    body = reply.body
    # Click the middle of " world" (span 2).
    span = body.spans[2]
    cursor = QTextCursor(body.document())
    cursor.setPosition((span.start + span.end) // 2)
    point = body.cursorRect(cursor).center()
    assert body.span_at(point) == 2
    qtbot.mouseClick(body.viewport(), Qt.MouseButton.LeftButton, pos=point)
    inspector = built.window.inspector
    assert inspector.current == 2
    assert inspector.values["prob"].text() == "30.0 %"
    assert inspector.values["rank"].text() == "3"  # two alternatives at 35 % each
    # one unit of information: p = 0.3 and 0.35, 0.35 -> entropy 1.58 bits; -log2(0.3) = 1.74
    assert inspector.values["entropy"].text() == "1.581 bits"
    assert inspector.values["surprisal"].text() == "1.74 bits"
    assert "entropy 1.58 bits" in body.spans[2].tooltip
    assert "·world" in inspector.title.text()
    assert body.accessibleDescription() == (
        "token 3: space world, 30.0 percent, rank 3; alternatives: alt 35.0 percent, "
        "space other 35.0 percent"
    )
    assert "30.0 %" in body.spans[2].tooltip and "alt" in body.spans[2].tooltip
    # Arrow keys move between tokens.
    body.setFocus()
    qtbot.keyClick(body, Qt.Key.Key_Right)
    assert inspector.current == 3 and inspector.values["prob"].text() == "2.0 %"
    qtbot.keyClick(body, Qt.Key.Key_Home)
    assert inspector.current == 0
    qtbot.keyClick(body, Qt.Key.Key_Left)
    assert inspector.current == 0
    # Clicking the per-token chart selects the token in the reply too.
    bars = inspector.strip.bars
    x = int(bars.bar_center(1))
    qtbot.mouseClick(bars, Qt.MouseButton.LeftButton, pos=QPoint(x, bars.height() // 2))
    assert inspector.current == 1 and body.selected == 1
    # A tooltip event on a token shows it (real QHelpEvent through the view).
    from PySide6.QtGui import QHelpEvent

    event = QHelpEvent(QEvent.Type.ToolTip, point, body.viewport().mapToGlobal(point))
    assert body.event(event)


def test_user_message_as_tokens_and_as_prompt(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "split me up")
    user = next(t.widget for t in built.controller.transcript.turns if t.role == "user")
    assert isinstance(user, UserMessageWidget)
    qtbot.mouseClick(user.mode_buttons["tokens"], Qt.MouseButton.LeftButton)
    assert user.mode == "tokens"
    assert user.body.toPlainText() == "split me up"
    assert len(user.body.spans) == 3 and "id 1" in user.body.spans[1].tooltip
    assert user.mode_buttons["prompt"].isEnabled()
    qtbot.mouseClick(user.mode_buttons["prompt"], Qt.MouseButton.LeftButton)
    prompt = built.controller.transcript.turns[0].prompt
    assert user.body.toPlainText() == marked_text(prompt.prompt_text)  # newlines shown as ↵
    assert user.info.text().startswith(f"The whole prompt: {len(prompt.prompt_ids)} tokens")
    qtbot.mouseClick(user.mode_buttons["text"], Qt.MouseButton.LeftButton)
    assert user.body.toPlainText() == "split me up"


def test_sampler_error_is_shown_and_chat_goes_on(qtbot, scripted_window):
    built = scripted_window
    built.model.fail_at = 2
    done = send_and_wait(qtbot, built, "break")
    assert done.finish_reason == "error"
    reply = replies(built)[-1]
    assert reply.error.isVisibleTo(built.window)
    assert reply.error.text() == "The sampler got logits it cannot sample from."
    built.model.fail_at = None
    send_and_wait(qtbot, built, "again")
    assert replies(built)[-1].text == "Hello, world!"
    # The failed reply is not sent back to the model as context.
    assert [m.role for m in built.model.calls[-1]] == ["user", "user"]


def test_prompt_too_long_error_then_keep_chatting(qtbot, scripted_window):
    built = scripted_window
    with qtbot.waitSignal(built.controller.feedback.error_shown, timeout=5000) as blocker:
        built.controller.runs.send("too long")
    assert blocker.args == ["Your message is longer than the model's context window."]
    assert replies(built)[-1].error.text() == blocker.args[0]
    qtbot.waitUntil(lambda: not built.controller.runs.busy, timeout=5000)
    built.controller.editing.edit_last()
    send_edit(qtbot, built.controller, "short", timeout=10000)
    assert replies(built)[-1].text == "Hello, world!"


def test_broken_model_folder_error_keeps_the_loaded_model(qtbot, scripted_window):
    built = scripted_window
    with qtbot.waitSignal(built.controller.models.model_failed, timeout=5000):
        built.controller.models.open_model("/nowhere/broken-model")
    banners = built.window.chat.column_widget.findChildren(ErrorBanner)
    assert banners[-1].text() == (
        "The model could not be loaded. /nowhere/broken-model/config.json is missing."
    )
    assert built.controller.models.model is built.model
    send_and_wait(qtbot, built, "still here?")
    assert replies(built)[-1].text == "Hello, world!"


def test_settings_default_from_model_then_persist(qtbot, scripted_window, qapp_theme, history):
    """A chat's settings start from the model's; "Use as default for new chats" saves them for
    the next start; "Reset to defaults" brings a chat back to them."""
    built = scripted_window
    panel = built.window.settings
    assert panel.temperature.value() == 0.5  # the model's generation_config default
    panel.temperature.setValue(1.25)
    panel.top_k.setValue(40)
    panel.seed.setValue(7)
    panel.system_prompt.setPlainText("Be brief.")
    send_and_wait(qtbot, built, "hi")
    sent_settings = built.controller.transcript.turns[-1].done.settings
    assert (sent_settings.temperature, sent_settings.top_k, sent_settings.seed) == (1.25, 40, 7)
    assert built.model.calls[-1][0].role == "system"
    assert built.model.calls[-1][0].content == "Be brief."
    qtbot.mouseClick(panel.make_default, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: paths.settings_file().is_file(), timeout=3000)
    built.controller.lifetime.shutdown()
    saved = json.loads(paths.settings_file().read_text())
    assert saved["generation"]["scripted"]["temperature"] == 1.25
    assert saved["system_prompt"] == "Be brief."
    # A new window starts from the saved settings.
    from desktop.ui import settings_store
    from desktop.ui.app import build
    from tests.ui.scripted_model import scripted_loader

    window, controller = build(
        scripted_loader(ScriptedModel()), None, history, settings_store.load()
    )
    qtbot.addWidget(window)
    with qtbot.waitSignal(controller.models.model_ready, timeout=5000):
        controller.models.open_model(None)
    assert window.settings.temperature.value() == 1.25
    assert window.settings.seed.value() == 7
    assert window.settings.system_prompt_text() == "Be brief."
    window.settings.temperature.setValue(0.5)
    assert controller.session.conversation.settings.generation.temperature == 0.5
    qtbot.mouseClick(window.settings.reset, Qt.MouseButton.LeftButton)
    assert window.settings.temperature.value() == 1.25
    assert controller.session.conversation.settings.generation.temperature == 1.25
    controller.lifetime.shutdown()


def test_conversation_list_open_rename_search_delete(qtbot, scripted_window, monkeypatch):
    built = scripted_window
    send_and_wait(qtbot, built, "about cats")
    first = built.controller.session.conversation_id
    built.window.new_chat_action.trigger()
    send_and_wait(qtbot, built, "about dogs")
    items = built.window.conversations.items
    assert items.count() == 2
    built.controller.chats.open_conversation(first)
    assert [t.role for t in built.controller.transcript.turns] == ["user", "assistant"]
    reopened = replies(built)[0]
    assert reopened.text == "Hello, world!" and [s.prob for s in reopened.steps][-1] == 0.02
    assert reopened.footer.text().startswith("4 tokens")
    conversations = built.window.conversations
    dialog = conversations.rename_dialog("about cats, and a title long enough to need the width")
    assert dialog.width() >= 440 and dialog.textValue().startswith("about cats")
    dialog.deleteLater()

    def type_title() -> None:  # the dialog runs modally: answer it from the event loop
        active = QApplication.activeModalWidget()
        assert isinstance(active, QInputDialog)
        active.setTextValue("  Cats  ")
        active.accept()

    QTimer.singleShot(0, type_title)
    with qtbot.waitSignal(conversations.rename_requested) as renamed:
        conversations.ask_rename(first, "about cats")
    assert renamed.args == [first, "Cats"]
    built.window.conversations.search.setText("Cats")
    assert items.count() == 1 and items.item(0).text().startswith("Cats")
    assert not conversations.no_match.isVisibleTo(conversations)
    built.window.conversations.search.setText("zzzz")
    assert items.count() == 0 and conversations.no_match.isVisibleTo(conversations)
    assert conversations.no_match.text() == "Nothing matches “zzzz”."  # QA 3, defect 15
    built.window.conversations.search.setText("")
    assert not conversations.no_match.isVisibleTo(conversations)
    from PySide6.QtWidgets import QMessageBox

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    built.window.conversations.ask_delete(first, "Cats")
    assert built.controller.session.conversation_id is None
    assert [c.title for c in built.history.list_conversations()] == ["about dogs"]


def test_closing_mid_reply_stops_the_worker(qtbot, scripted_window):
    built = scripted_window
    built.model.reply = [("x", 0.5)] * 10_000
    built.model.delay_s = 0.005
    built.controller.runs.send("long")
    qtbot.waitUntil(lambda: len(replies(built)[-1].steps) > 3, timeout=5000)
    run = built.controller.runs.run
    started = time.perf_counter()
    built.window.close()
    qtbot.waitUntil(lambda: not built.window.isVisible(), timeout=2000)
    assert time.perf_counter() - started < 2.0  # the worker ends within a step
    assert built.controller.runs.run is None
    assert run.worker.cancel_event.is_set()
    assert built.model.closed


def test_token_views_look_the_same_after_a_restart(qtbot, qapp_theme, tmp_path):
    """A reply saved by one window, reopened by a new window on a new History over the same file
    (as after a restart), shows the same tokens with the same probabilities and span formats."""
    from desktop.history import History
    from desktop.ui import settings_store
    from desktop.ui.app import build
    from tests.ui.scripted_model import scripted_loader

    def open_window(history):
        window, controller = build(
            scripted_loader(ScriptedModel()), None, history, settings_store.load()
        )
        qtbot.addWidget(window)
        window.show()
        with qtbot.waitSignal(controller.models.model_ready, timeout=5000):
            controller.models.open_model(None)
        return window, controller

    def look(controller):
        view = [t.widget for t in controller.transcript.turns if t.role == "assistant"][-1].body
        formats = [span_background(view, i) for i in range(len(view.spans))]
        return view.toPlainText(), [
            (f.background().color().name(), f.underlineStyle()) for f in formats
        ]

    path = tmp_path / "history.sqlite3"
    first = History(path)
    window, controller = open_window(first)
    with qtbot.waitSignal(controller.runs.reply_done, timeout=10000):
        window.chat.input.setPlainText("remember me")
        qtbot.keyClick(window.chat.input, Qt.Key.Key_Return)
    before = look(controller)
    steps_before = [t.widget for t in controller.transcript.turns if t.role == "assistant"][
        -1
    ].steps
    conv_id = controller.session.conversation_id
    window.close()
    controller.lifetime.shutdown()
    first.close()

    second = History(path)
    try:
        window, controller = open_window(second)
        controller.chats.open_conversation(conv_id)
        assert look(controller) == before
        steps_after = [t.widget for t in controller.transcript.turns if t.role == "assistant"][
            -1
        ].steps
        assert list(steps_after) == list(steps_before)  # every field of every TokenStep
        assert len(set(before[1])) > 1  # the reply really spans several probability bins
        controller.lifetime.shutdown()
    finally:
        second.close()
