"""Defects from the new-user QA trial, each driven through the real window around the scripted
model: closing and stopping during a long prefill, replies never lost (close, New chat, opening
another chat, Regenerate, Edit last), model fallback, stale inspector and status bar, layout in the
light theme, the worker/thread start race, and the small ones (plurals, disabled buttons, seed,
Ctrl+Q, --help)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QThread
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QMessageBox, QScrollArea

from desktop.ui import settings_store, theme
from desktop.ui.app import build
from desktop.ui.messages import ErrorBanner, NoticeBanner, UserMessageWidget
from tests.ui.scripted_model import ScriptedModel, scripted_loader
from tests.ui.test_edit_in_place import send_edit
from tests.ui.test_window import replies, send_and_wait


def column_widgets(built, kind):
    column = built.window.chat.column
    items = (column.itemAt(i).widget() for i in range(column.count()))
    return [w for w in items if isinstance(w, kind)]


def start_long_reply(qtbot, built, text="go on", tokens=3):
    """Starts a reply of 400 tokens (10 ms each) and waits for its first `tokens` tokens."""
    built.model.reply = [(f"w{i} ", 0.5) for i in range(400)]
    built.model.delay_s = 0.01
    built.controller.runs.send(text)
    qtbot.waitUntil(lambda: len(built.controller.runs.run.reply.steps) >= tokens, timeout=5000)
    return built.controller.runs.run


# ---- 1: closing and stopping during a long prefill ---------------------------------------------
def test_closing_during_a_long_prefill_waits_for_the_worker_and_saves_the_reply(
    qtbot, scripted_window
):
    built = scripted_window
    built.model.prefill_s = 0.6  # one prefill chunk: the cancel flag is seen when it ends
    built.controller.runs.send("a very long message")
    qtbot.waitUntil(lambda: built.controller.runs.run.reply.prompt is not None, timeout=5000)
    conv = built.controller.session.conversation_id
    built.window.close()
    # The window waits for the worker instead of destroying a running QThread...
    assert built.window.isVisible()
    assert built.window.chat.stop_button.text() == "Stopping…"
    qtbot.waitUntil(lambda: not built.window.isVisible(), timeout=5000)
    assert built.controller.runs.run is None and built.model.closed
    # ...and the stopped reply is saved like Esc saves it.
    stored = built.history.messages(conv)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].partial and stored[1].done.finish_reason == "cancelled"


def test_stop_during_prefill_says_at_once_that_it_was_heard(qtbot, scripted_window):
    built = scripted_window
    built.model.prefill_s = 0.6
    built.controller.runs.send("a very long message")
    qtbot.waitUntil(lambda: built.controller.runs.run.reply.prompt is not None, timeout=5000)
    reply = replies(built)[-1]
    stop = built.window.chat.stop_button
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        qtbot.mouseClick(stop, Qt.MouseButton.LeftButton)
        assert stop.text() == "Stopping…" and not stop.isEnabled()
        assert reply.reading.text() == "Stopping…"
    assert reply.footer.text() == "stopped before the first token · CPUExecutionProvider"
    assert stop.text() == "Stop" and stop.isEnabled()


# ---- 3: never lose a reply -----------------------------------------------------------------------
def test_new_chat_mid_reply_saves_the_partial_reply(qtbot, scripted_window):
    built = scripted_window
    start_long_reply(qtbot, built)
    conv = built.controller.session.conversation_id
    built.window.new_chat_action.trigger()
    qtbot.waitUntil(lambda: not built.controller.runs.busy, timeout=5000)
    stored = built.history.messages(conv)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].partial and 3 <= len(stored[1].steps) < 400
    assert stored[1].text == "".join(s.text for s in stored[1].steps)
    assert built.controller.transcript.turns == []


def test_opening_another_chat_mid_reply_saves_the_partial_reply(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "first chat")
    first = built.controller.session.conversation_id
    built.window.new_chat_action.trigger()
    start_long_reply(qtbot, built, "second chat")
    second = built.controller.session.conversation_id
    built.controller.chats.open_conversation(first)
    qtbot.waitUntil(lambda: not built.controller.runs.busy, timeout=5000)
    stored = built.history.messages(second)
    assert [m.role for m in stored] == ["user", "assistant"] and stored[1].partial
    assert [t.role for t in built.controller.transcript.turns] == ["user", "assistant"]
    assert replies(built)[0].text == "Hello, world!"


def test_regenerate_stopped_before_its_first_token_keeps_the_previous_reply(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "hi")
    previous = built.controller.transcript.turns[-1].node  # the reply (bubbles render it)
    built.model.prefill_s = 0.6
    built.model.reply = [("Other", 0.5)]
    built.controller.runs.regenerate()
    qtbot.waitUntil(lambda: built.controller.runs.run.reply.prompt is not None, timeout=5000)
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        built.controller.runs.stop()
    shown = [t for t in built.controller.transcript.turns if t.role == "assistant"]
    assert [t.node for t in shown] == [previous] and shown[0].widget.isVisibleTo(built.window)
    assert shown[0].widget.text == "Hello, world!" and previous.version == (1, 1)
    stored = built.history.messages(built.controller.session.conversation_id)
    assert [(m.role, m.text, m.partial) for m in stored] == [
        ("user", "hi", False),
        ("assistant", "Hello, world!", False),
    ]
    # A regenerate that does produce tokens replaces it, in the history too.
    built.model.prefill_s = 0.0
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        built.controller.runs.regenerate()
    stored = built.history.messages(built.controller.session.conversation_id)
    assert [(m.role, m.text) for m in stored] == [("user", "hi"), ("assistant", "Other")]
    assert [r.text for r in replies(built)] == ["Other"]


def test_edit_last_deletes_nothing_until_the_edit_is_sent(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "one")
    send_and_wait(qtbot, built, "two")
    conv = built.controller.session.conversation_id
    qtbot.mouseClick(built.window.chat.edit_button, Qt.MouseButton.LeftButton)
    editor = built.controller.editing.editor
    assert editor.box.toPlainText() == "two"  # edited in place, in its bubble (issue 15)
    assert len(built.history.messages(conv)) == 4  # nothing deleted yet
    assert [t.role for t in built.controller.transcript.turns] == ["user", "assistant"] * 2
    assert all(t.widget.isVisibleTo(built.window) for t in built.controller.transcript.turns)
    # Esc cancels the edit: the message is shown again as it was.
    qtbot.keyClick(editor.box, Qt.Key.Key_Escape)
    assert built.controller.editing.editor is None
    assert [t.text for t in built.controller.transcript.turns if t.role == "user"] == ["one", "two"]
    status = built.window.statusBar()
    # Sending the edit replaces the turn, on screen and in the history.
    qtbot.mouseClick(built.window.chat.edit_button, Qt.MouseButton.LeftButton)
    send_edit(qtbot, built.controller, "two, edited", timeout=10000)
    assert not status.currentMessage().startswith("Editing")
    stored = built.history.messages(conv)
    assert [m.text for m in stored if m.role == "user"] == ["one", "two, edited"]
    assert [t.text for t in built.controller.transcript.turns if t.role == "user"] == [
        "one",
        "two, edited",
    ]


def test_regenerate_during_an_edit_cancels_the_edit_and_deletes_nothing_else(
    qtbot, scripted_window
):
    built = scripted_window
    send_and_wait(qtbot, built, "one")
    send_and_wait(qtbot, built, "two")
    conv = built.controller.session.conversation_id
    qtbot.mouseClick(built.window.chat.edit_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=10000):
        qtbot.mouseClick(built.window.chat.regenerate_button, Qt.MouseButton.LeftButton)
    assert built.controller.editing.editor is None  # the edit is gone, not pending
    roles = [t.role for t in built.controller.transcript.turns]
    assert roles == ["user", "assistant"] * 2
    assert [t.text for t in built.controller.transcript.turns if t.role == "user"] == ["one", "two"]
    stored = built.history.messages(conv)
    assert [m.role for m in stored] == roles  # the screen and the history agree
    assert [m.text for m in stored if m.role == "user"] == ["one", "two"]


def test_edit_text_is_cleared_when_switching_chats(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "first chat")
    first = built.controller.session.conversation_id
    built.window.new_chat_action.trigger()
    send_and_wait(qtbot, built, "second chat")
    qtbot.mouseClick(built.window.chat.edit_button, Qt.MouseButton.LeftButton)
    assert built.controller.editing.editor.box.toPlainText() == "second chat"
    built.controller.chats.open_conversation(first)
    assert built.controller.editing.editor is None and built.controller.editing.editing is None
    assert built.window.chat.input.toPlainText() == ""
    assert len(built.history.messages(first)) == 2


# ---- 6: a missing last-used model ---------------------------------------------------------------
def test_missing_last_used_model_falls_back_to_the_default_with_a_notice(
    qtbot, qapp_theme, history
):
    settings = settings_store.load()
    settings.model = "/tmp/gone/broken-model"
    window, controller = build(scripted_loader(ScriptedModel()), None, history, settings)
    qtbot.addWidget(window)
    with qtbot.waitSignal(controller.models.model_ready, timeout=5000):
        controller.models.open_model(settings.model, fallback_to_default=True)
    assert window.model_label.text() == "scripted"
    assert controller.models.app_settings.model is None  # the default from now on
    built = type("B", (), {"window": window})
    notices = column_widgets(built, NoticeBanner)
    assert len(notices) == 1 and "Opening the default model instead" in notices[0].text()
    assert column_widgets(built, ErrorBanner) == []
    with qtbot.waitSignal(controller.runs.reply_done, timeout=5000):
        controller.runs.send("hello")
    assert column_widgets(built, NoticeBanner) == []  # read by then: the chat takes its place
    assert [t.role for t in controller.transcript.turns] == ["user", "assistant"]
    controller.lifetime.shutdown()


def test_load_error_banner_clears_once_a_model_loads(qtbot, scripted_window):
    built = scripted_window
    with qtbot.waitSignal(built.controller.models.model_failed, timeout=5000):
        built.controller.models.open_model("/nowhere/broken-model")
    assert len(column_widgets(built, ErrorBanner)) == 1
    with qtbot.waitSignal(built.controller.models.model_ready, timeout=5000):
        built.controller.models.open_model(None)
    assert column_widgets(built, ErrorBanner) == []


def test_a_model_that_fails_to_load_is_neither_shown_nor_remembered(qtbot, scripted_window):
    """QA 3, defect 5: the Model box kept the failed folder, the next start tried it again, and
    its error stayed above the chat while replies came from the model still loaded."""
    built = scripted_window
    controller, box = built.controller, built.window.settings.model
    remembered = controller.models.app_settings.model
    with qtbot.waitSignal(controller.models.model_failed, timeout=5000):
        controller.models.open_model("/nowhere/broken-model")
    assert controller.models.app_settings.model == remembered  # not saved for the next start
    assert box.currentData() == "scripted" and box.findData("/nowhere/broken-model") < 0
    assert len(column_widgets(built, ErrorBanner)) == 1
    send_and_wait(qtbot, built, "still here?")
    assert column_widgets(built, ErrorBanner) == []  # the chat went on with the loaded model
    with qtbot.waitSignal(controller.models.model_ready, timeout=5000):
        controller.models.open_model("/models/other")
    assert controller.models.app_settings.model == "/models/other"  # loaded: remembered


# ---- 7: stale inspector and status bar ----------------------------------------------------------
def pin_a_token(qtbot, built):
    send_and_wait(qtbot, built, "hi")
    replies(built)[-1].body.span_activated.emit(2)
    assert built.window.inspector.values["prob"].text() == "30.0 %"


def assert_inspector_empty(built, steps=()):
    """No token pinned; the per-token chart holds `steps` (an opened chat's last reply)."""
    inspector = built.window.inspector
    assert inspector.current == -1 and inspector.steps == list(steps)
    assert inspector.strip.bars.steps == list(steps)
    assert inspector.values["prob"].text() == "–"
    assert inspector.title.text() == "Click a token of a reply to inspect it."


def test_inspector_resets_on_new_chat_open_chat_and_delete(qtbot, scripted_window, monkeypatch):
    built = scripted_window
    pin_a_token(qtbot, built)
    first = built.controller.session.conversation_id
    built.window.new_chat_action.trigger()
    assert_inspector_empty(built)
    pin_a_token(qtbot, built)
    built.controller.chats.open_conversation(first)
    assert_inspector_empty(built, replies(built)[-1].steps)  # its chart shown (issue 15)
    replies(built)[-1].body.span_activated.emit(1)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    built.window.conversations.ask_delete(first, "hi")
    assert_inspector_empty(built)


def test_context_used_for_a_reopened_chat_and_after_edit(qtbot, scripted_window):
    built = scripted_window
    first = send_and_wait(qtbot, built, "one")
    second = send_and_wait(qtbot, built, "two")
    conv = built.controller.session.conversation_id
    used = second.prompt_tokens + second.completion_tokens
    built.window.new_chat_action.trigger()
    assert built.window.context_label.text() == "context 0 / 2048"
    built.controller.chats.open_conversation(conv)
    assert built.window.context_label.text() == f"context {used} / 2048"
    qtbot.mouseClick(built.window.chat.edit_button, Qt.MouseButton.LeftButton)
    # Editing in place keeps the chat on screen, and its context, until the edit is sent.
    assert built.window.context_label.text() == f"context {used} / 2048"
    send_edit(qtbot, built.controller, "two, edited", timeout=10000)
    edited = built.controller.transcript.turns[-1].node.done
    assert edited.prompt_tokens > first.prompt_tokens  # it read the first turn too
    assert built.window.context_label.text() == (
        f"context {edited.prompt_tokens + edited.completion_tokens} / 2048"
    )


# ---- 8: layout in the light theme ---------------------------------------------------------------
def test_settings_panel_fits_its_dock_at_the_default_size(qtbot, scripted_window):
    built = scripted_window
    window = built.window
    assert (window.width(), window.height()) == (1360, 860)
    window.settings_dock.raise_()
    qtbot.waitUntil(lambda: window.settings.isVisible())
    panel = window.settings
    name = "SmolLM2-135M-Instruct · q4"
    panel.set_models([(name, "SmolLM2-135M-Instruct")], "SmolLM2-135M-Instruct")
    qtbot.wait(20)
    scroll = panel.findChild(QScrollArea)
    viewport = scroll.viewport()
    assert scroll.widget().width() <= viewport.width()  # nothing cut off on the right
    fields = (panel.model, panel.browse, panel.provider, panel.temperature, panel.top_k)
    for field in (*fields, panel.repetition_penalty, panel.seed, panel.reset):
        right = field.mapTo(viewport, field.rect().topRight()).x()
        assert right < viewport.width(), (field.accessibleName() or field.text(), right)
        assert field.width() >= field.minimumSizeHint().width()
    # The model box shows the default model's whole name (text + the drop-down arrow).
    assert panel.model.width() >= panel.model.fontMetrics().horizontalAdvance(name) + 24


def test_user_token_boundaries_stand_out_in_the_light_theme(qtbot, scripted_window):
    built = scripted_window
    send_and_wait(qtbot, built, "split me up")
    user = next(t.widget for t in built.controller.transcript.turns if t.role == "user")
    assert isinstance(user, UserMessageWidget)
    qtbot.mouseClick(user.mode_buttons["tokens"], Qt.MouseButton.LeftButton)
    bubble = QColor(theme.STYLE_VARS[False]["@bubble_user"])
    first, second = (
        theme.QColor(fmt.background().color())
        for fmt in (
            theme_piece(user, 0),
            theme_piece(user, 1),
        )
    )
    # Neighbouring tokens differ clearly from each other (luminance, 0-255 scale).
    assert abs(first.lightness() - second.lightness()) >= 25, (first.name(), second.name())
    assert max(abs(c.lightness() - bubble.lightness()) for c in (first, second)) >= 25


def theme_piece(user, index):
    from PySide6.QtGui import QTextCursor

    span = user.body.spans[index]
    cursor = QTextCursor(user.body.document())
    cursor.setPosition(span.start + 1)
    return cursor.charFormat()


# ---- 2b: the worker/thread start race -----------------------------------------------------------
def test_a_worker_that_ends_before_its_thread_is_watched_still_finishes_the_reply(
    qtbot, scripted_window, monkeypatch
):
    """Forces what happened now and then in the full run: the thread ends before start()
    returns. The reply must still finish (finished must be connected before start)."""
    built = scripted_window
    original = QThread.start

    def start_and_finish(thread, *args):
        original(thread, *args)
        thread.wait()

    monkeypatch.setattr(QThread, "start", start_and_finish)
    done = send_and_wait(qtbot, built, "quick", timeout=3000)
    assert done is not None and done.finish_reason == "stop"
    with qtbot.waitSignal(built.controller.models.model_ready, timeout=3000):
        built.controller.models.open_model(None)


# ---- 10: small ones ---------------------------------------------------------------------------
def test_chat_list_says_1_message_and_2_messages(qtbot, scripted_window):
    built = scripted_window
    built.model.fail_at = 0  # an error with no token: the reply is not saved
    send_and_wait(qtbot, built, "hi")
    item = built.window.conversations.items.item(0).text()
    assert " · 1 message · " in item, item
    built.model.fail_at = None
    send_and_wait(qtbot, built, "again")
    item = built.window.conversations.items.item(0).text()
    assert " · 3 messages · " in item, item


def test_regenerate_and_edit_are_disabled_in_an_empty_chat(qtbot, scripted_window):
    built = scripted_window
    chat = built.window.chat
    assert not chat.regenerate_button.isEnabled() and not chat.edit_button.isEnabled()
    # ...and look it: disabled text is greyed in the light theme.
    palette = chat.edit_button.palette()
    role, groups = palette.ColorRole.ButtonText, palette.ColorGroup
    assert palette.color(groups.Disabled, role) != palette.color(groups.Active, role)
    send_and_wait(qtbot, built, "hi")
    assert chat.regenerate_button.isEnabled() and chat.edit_button.isEnabled()
    built.window.new_chat_action.trigger()
    assert not chat.regenerate_button.isEnabled() and not chat.edit_button.isEnabled()


def test_a_too_long_message_leaves_no_empty_chat(qtbot, scripted_window):
    built = scripted_window
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        built.controller.runs.send("too long")
    assert built.history.list_conversations() == []
    assert built.window.conversations.items.count() == 0
    send_and_wait(qtbot, built, "short")
    # The refused message is not sent to the model again.
    assert [m.content for m in built.model.calls[-1]] == ["short"]
    assert [c.message_count for c in built.history.list_conversations()] == [2]


def test_greedy_replies_show_no_seed(qtbot, scripted_window):
    built = scripted_window
    built.window.settings.temperature.setValue(0.0)
    send_and_wait(qtbot, built, "hi")
    assert replies(built)[-1].footer.text() == (
        "4 tokens · TTFT 5 ms · 100.0 tokens/s · CPUExecutionProvider"
    )


def test_ctrl_q_closes_the_window(qtbot, scripted_window):
    built = scripted_window
    built.window.activateWindow()
    qtbot.waitUntil(lambda: built.window.isActiveWindow())
    qtbot.keyClick(built.window.chat.input, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not built.window.isVisible(), timeout=2000)


def test_help_lists_the_window_options(capsys):
    from desktop.__main__ import main

    try:
        main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    for option in ("--theme", "--model", "--provider", "--self-test"):
        assert option in out, option


def test_one_token_is_highlighted_across_replies(qtbot, scripted_window):
    """QA 3, defect 10: a token picked in an earlier reply stayed highlighted after one in another
    reply was picked, and after Regenerate reset the inspector."""
    built = scripted_window
    send_and_wait(qtbot, built, "one")
    send_and_wait(qtbot, built, "two")
    first, second = (r.body for r in replies(built))
    first.select_span(2, emit=True)
    assert first.selected == 2 and len(first.extraSelections()) == 1
    second.select_span(1, emit=True)
    assert first.selected == -1 and first.extraSelections() == []
    assert second.selected == 1 and len(second.extraSelections()) == 1
    first.select_span(0, emit=True)
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=10000):
        built.controller.runs.regenerate()  # replaces the second reply; the inspector resets
    assert built.window.inspector.current == -1
    assert first.selected == -1 and first.extraSelections() == []


def test_a_model_without_a_chat_template_gets_a_notice(qtbot, qapp_theme, history):
    """QA 3, defect 9: the window said nothing when a model had no chat template."""
    model = ScriptedModel(template_note="scripted has no chat template (…)")
    window, controller = build(scripted_loader(model), None, history, settings_store.load())
    qtbot.addWidget(window)
    with qtbot.waitSignal(controller.models.model_ready, timeout=5000):
        controller.models.open_model(None)
    built = type("B", (), {"window": window})
    notices = column_widgets(built, NoticeBanner)
    assert [n.text() for n in notices] == ["scripted has no chat template (…)"]
    controller.lifetime.shutdown()


def test_a_one_token_reply_footer_says_1_token_and_no_rate(qtbot, scripted_window):
    # QA 4: a reply stopped after its first token read "1 tokens · ... · 0.0 tokens/s".
    built = scripted_window
    built.window.settings.temperature.setValue(0.0)
    built.window.settings.max_new_tokens.setValue(1)
    send_and_wait(qtbot, built, "hi")
    assert replies(built)[-1].footer.text() == "1 token · TTFT 5 ms · CPUExecutionProvider"
    built.window.settings.max_new_tokens.setValue(2)
    send_and_wait(qtbot, built, "again")
    assert replies(built)[-1].footer.text().startswith("2 tokens · TTFT 5 ms · 100.0 tokens/s")
