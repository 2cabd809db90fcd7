"""QA of the merged window (issue 15, after the five parts were merged): defects found by using it
as a new user would, one test each, around the scripted model."""

from __future__ import annotations

import itertools
from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication, QScrollArea, QWidget

from desktop.ui.attention_view import AttentionView
from desktop.ui.chat_menu import file_name
from desktop.ui.focus_order import first_stop
from desktop.ui.shortcuts import PANELS, ShortcutsDialog
from desktop.ui.token_view import percent
from tests.ui.test_inside_views import reply_of, select
from tests.ui.test_keyboard_access import press
from tests.ui.test_window import send_and_wait

REPLY_TEXT = (
    "This function takes one argument x and returns the result of adding num1 and num2. The "
    "lambda function is used to define a custom function that accepts an optional parameter x, "
    "which defaults to 0. When called without any additional arguments, it returns x times 5."
)

LONG_TEXT = " ".join([REPLY_TEXT] * 6)


def overlaps(bubble: QWidget) -> list[tuple[str, str]]:
    """Pairs of `bubble`'s shown parts (header, body, footer...) that are drawn over each other."""
    parts = [c for c in bubble.findChildren(QWidget) if c.parentWidget() is bubble]
    parts = sorted((c for c in parts if c.isVisible()), key=lambda c: c.geometry().top())
    return [
        (type(a).__name__, type(b).__name__)
        for a, b in itertools.pairwise(parts)
        if a.geometry().bottom() >= b.geometry().top()
    ]


def test_a_regenerated_reply_is_as_tall_as_its_parts(qtbot, scripted_window):
    """Seen under Xvfb at 1024x700: after Regenerate, the new reply's last line of tokens was
    drawn over its footer ("148 tokens · TTFT ..."): the column kept each bubble to its size
    hint, which is shorter than the height its wrapped header and footer need at its width."""
    built = scripted_window
    built.window.resize(1024, 700)
    built.model.reply = [((" " if i else "") + w, 0.5) for i, w in enumerate(REPLY_TEXT.split())]
    send_and_wait(qtbot, built, "Write a short function")
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=10000):
        built.window.chat.regenerate_button.click()
    qtbot.wait(50)
    for turn in built.controller.transcript.turns:
        bubble = turn.widget
        assert overlaps(bubble) == [], turn.role
        assert bubble.height() >= bubble.heightForWidth(bubble.width())


def test_edit_last_scrolls_to_the_editor(qtbot, scripted_window):
    """Seen under Xvfb at 1024x700: after a long reply, "Edit last" (or Ctrl+Shift+E) opened the
    editor in the message's bubble above the screen; the column did not scroll, so nothing
    seemed to happen while the keyboard typed into a box out of sight."""
    built = scripted_window
    built.window.resize(1024, 700)
    built.model.reply = [((" " if i else "") + w, 0.5) for i, w in enumerate(LONG_TEXT.split())]
    send_and_wait(qtbot, built, "Write a long story")
    chat = built.window.chat
    qtbot.waitUntil(lambda: chat.scroll.verticalScrollBar().value() > 0)  # at the reply's end
    qtbot.mouseClick(chat.edit_button, Qt.MouseButton.LeftButton)
    box = built.controller.editing.editor.box
    assert box.hasFocus()
    viewport = chat.scroll.viewport()

    def box_on_screen() -> bool:
        top = box.mapTo(viewport, QPoint(0, 0)).y()
        return top >= 0 and top + box.height() <= viewport.height()

    qtbot.waitUntil(box_on_screen, timeout=2000)
    qtbot.wait(200)
    assert box_on_screen()  # and it stays there (the column's follow-the-end left it alone)


def widest_line(document) -> float:
    """The widest laid-out line of `document` (px)."""
    widest, block = 0.0, document.begin()
    while block.isValid():
        layout = block.layout()
        for index in range(layout.lineCount()):
            widest = max(widest, layout.lineAt(index).naturalTextWidth())
        block = block.next()
    return widest


def test_a_long_code_line_wraps_in_the_text_view(qtbot, scripted_window):
    """Seen under Xvfb at 1024x700: in a reply's Text view a code line longer than the bubble
    ("add_two = add_numbers  # This is the original function definition ...") was cut off at
    the bubble's edge, its end unreadable (code blocks did not wrap and the view does not
    scroll sideways)."""
    built = scripted_window
    built.window.resize(1024, 700)
    long_line = "add_two = add_numbers  # " + "this comment goes on and on " * 8
    built.model.reply = (("```python\n", 0.9), (long_line + "\n", 0.9), ("```", 0.9))
    send_and_wait(qtbot, built, "code please")
    reply = [t.widget for t in built.controller.transcript.turns if t.role == "assistant"][-1]
    reply.show_mode("text")
    view = reply.rendered
    qtbot.wait(50)
    assert view.document().toPlainText().strip() == long_line.strip()  # all of it is there
    assert widest_line(view.document()) <= view.viewport().width()  # ... and on screen
    assert view.height() >= view.document().size().height()


def test_the_list_of_keys_says_what_esc_does_in_an_edit(qtbot, scripted_window):
    """F1's list said Esc stops a reply, and nothing of Esc cancelling an edit in place (the
    editor's own bar says so, the list a person reads to learn the keys did not)."""
    window = scripted_window.window
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_F1)
    dialog = window.findChild(ShortcutsDialog)
    assert dialog is not None and dialog.isVisible()
    rows = dialog.texts()
    editing = [does for keys, does in rows if "Esc" in keys.split(", ") and "edit" in does]
    assert editing and "cancel" in editing[0]
    enter = [does for keys, does in rows if "Enter" in keys.split(", ") and "edit" in does]
    assert enter and "new version" in enter[0]


def test_export_dialog_opens_in_a_folder_that_exists(qtbot, scripted_window, tmp_path, monkeypatch):
    """Seen under Xvfb: Export as JSON… opened in the folder the app was started from (here the
    source tree): Documents was asked for by name and, not existing, Qt's dialog fell back to
    the working directory (in a packaged app, "/" or the app's own folder)."""
    home = tmp_path / "account"  # a home without Documents, as on a fresh Linux account
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.chdir(tmp_path)
    built = scripted_window
    send_and_wait(qtbot, built, "hello")
    conv_id = built.controller.session.conversation_id
    built.controller.chat_menu.ask_export(conv_id, "json")
    dialog = built.controller.chat_menu.dialog
    assert dialog is not None
    assert Path(dialog.directory().absolutePath()) == home
    dialog.reject()


def test_a_long_tokens_bytes_wrap_in_a_narrow_inspector(qtbot, scripted_window):
    """Seen under Xvfb at 800x600: a token such as " function" (9 bytes) made the Bytes line
    "<20 66 75 6E 63 74 69 6F 6E>" wider than the inspector; its end was cut off, and the panel's
    content grew past the panel, so the legend's "20–50 %" went under the scroll bar."""
    built = scripted_window
    window = built.window
    window.resize(800, 600)
    built.model.reply = (("Use", 0.9), (" implementation", 0.4), (" details", 0.9))
    send_and_wait(qtbot, built, "hi")
    reply = [t.widget for t in built.controller.transcript.turns if t.role == "assistant"][-1]
    reply.body.select_span(1, emit=True)
    inspector = window.inspector
    value = inspector.values["bytes"]
    assert value.text().startswith("<20 69 6D 70")
    qtbot.waitUntil(lambda: inspector.isVisible())
    qtbot.wait(50)
    assert inspector.width() <= window.inspector_dock.width()  # the panel fits its dock
    viewport = inspector.findChild(QScrollArea).viewport()
    right = value.mapTo(viewport, QPoint(value.width(), 0)).x()
    assert right <= viewport.width()
    assert value.fontMetrics().horizontalAdvance(value.text()) > value.width()  # so it wrapped


def span_on_screen(chat, body, index: int) -> bool:
    """Whether token `index` of `body` is inside the chat column's visible area."""
    span = body.spans[index]
    cursor = QTextCursor(body.document())
    cursor.setPosition(span.start)
    rect = body.cursorRect(cursor)
    viewport = chat.scroll.viewport()
    top = body.viewport().mapTo(viewport, rect.topLeft()).y()
    return body.isVisible() and top >= 0 and top + rect.height() <= viewport.height()


def test_a_token_picked_off_screen_is_scrolled_into_view(qtbot, scripted_window):
    """Seen under Xvfb at 800x600 (150 %): a bar clicked in the inspector's chart, or End / the
    arrow keys in a long reply, selected a token below the screen; the chat did not move, so the
    highlighted token (the one the inspector describes) was out of sight."""
    built = scripted_window
    built.window.resize(1024, 700)
    built.model.reply = [((" " if i else "") + w, 0.5) for i, w in enumerate(LONG_TEXT.split())]
    send_and_wait(qtbot, built, "Write a long story")
    chat = built.window.chat
    reply = [t.widget for t in built.controller.transcript.turns if t.role == "assistant"][-1]
    last = len(reply.body.spans) - 1
    reply.show_mode("text")  # read as text, then a bar of the chart picked
    qtbot.wait(50)
    chat.scroll.verticalScrollBar().setValue(0)
    assert not span_on_screen(chat, reply.body, last)
    built.window.inspector.token_clicked.emit(last)
    assert reply.mode == "tokens" and reply.body.selected == last
    qtbot.waitUntil(lambda: span_on_screen(chat, reply.body, last), timeout=2000)
    # The keyboard: Home goes back to the first token, which is scrolled to as well.
    reply.body.setFocus()
    qtbot.keyClick(reply.body, Qt.Key.Key_Home)
    assert reply.body.selected == 0
    qtbot.waitUntil(lambda: span_on_screen(chat, reply.body, 0), timeout=2000)


def test_search_box_keys_reach_the_chats_found(qtbot, scripted_window):
    """Seen under Xvfb: after Ctrl+K and a search, Down and Enter in the search box did nothing;
    a keyboard user had to Tab to the list. Down goes to the first chat found, Enter opens it."""
    built = scripted_window
    send_and_wait(qtbot, built, "apples and pears")
    first = built.controller.session.conversation_id
    built.window.new_chat_action.trigger()
    send_and_wait(qtbot, built, "the weather today")
    chats = built.window.conversations
    chats.search.setText("apples")
    qtbot.waitUntil(lambda: chats.items.count() == 1)
    qtbot.keyClick(chats.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: built.controller.session.conversation_id == first)
    chats.search.setFocus()
    qtbot.keyClick(chats.search, Qt.Key.Key_Down)
    assert chats.items.hasFocus() and chats.items.currentRow() == 0


def test_the_attention_panel_leaves_the_chat_its_width_at_800x600(
    qtbot, real_window, tiny_llama_dir
):
    """Seen under Xvfb at 800x600: with the Attention panel shown for a token, its toggle's one
    line "Leave the first token out of the colour scale (it takes 31.5 %)" made the panel
    ~400 px at least; with the chat's own minimum that is more than 800 px, so the message box
    went under the Send button and the panel's right edge off the screen."""
    window, controller = real_window
    window.resize(800, 600)
    turn = reply_of(qtbot, window, controller, tiny_llama_dir)
    window.attention_dock.show()
    window.attention_dock.raise_()
    qtbot.waitUntil(controller.inside.on_screen)
    select(qtbot, controller, turn, 2)
    view = window.attention
    view.sink.setChecked(True)
    assert f"it takes {percent(float(view.shown[0]))}" in view.sink.text()  # still said
    qtbot.wait(50)
    assert window.minimumSizeHint().width() <= 800
    chat = window.chat
    assert chat.width() >= chat.minimumSizeHint().width()
    box, send = chat.input.geometry(), chat.send_button.geometry()
    assert box.right() < send.left()  # side by side, not one over the other


def test_the_attention_pickers_wrap_in_a_narrow_panel(qtbot, qapp_theme):
    """An encoder-decoder's three pickers ("Cross-attention (to the input)", a layer, a head)
    stood on one line 440 px wide: the Attention panel alone then asked for more than the 800 px
    window leaves it beside the chat. They wrap."""
    view = AttentionView()
    qtbot.addWidget(view)
    view.kind.addItems(["Cross-attention (to the input)", "Decoder self-attention"])
    view.layer.addItems(["Mean of all layers", *(f"Layer {i}" for i in range(1, 31))])
    view.head.addItems(["Mean of heads", *(f"Head {i}" for i in range(1, 10))])
    for picker in (view.kind, view.layer, view.head):
        picker.setVisible(True)
    view.resize(300, 500)
    view.show()
    qtbot.wait(20)
    one_line = sum(p.sizeHint().width() for p in (view.kind, view.layer, view.head))
    assert one_line > 400
    assert view.minimumSizeHint().width() <= 320
    assert view.head.geometry().top() > view.kind.geometry().top()  # on a line of its own


def test_tab_from_the_edit_box_stays_in_the_conversation(qtbot, scripted_window):
    """Found by walking the keys: the editor, added to a bubble after the window's focus order
    was set, sat at the end of the window's chain, so Tab after its Send jumped to the message
    box below and Shift+Tab from the box to a panel's tab bar, not to the message's own
    buttons."""
    built = scripted_window
    window = built.window
    window.activateWindow()
    send_and_wait(qtbot, built, "hi")
    send_and_wait(qtbot, built, "there")
    user, reply = [t.widget for t in built.controller.transcript.turns][-2:]
    qtbot.mouseClick(window.chat.edit_button, Qt.MouseButton.LeftButton)
    editor = built.controller.editing.editor
    qtbot.waitUntil(editor.send_button.isVisible)
    assert editor.box.hasFocus()
    walked = []
    for _ in range(3):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        walked.append(QApplication.focusWidget())
    assert walked[:2] == [editor.cancel_button, editor.send_button]
    assert reply.isAncestorOf(walked[2])  # then the reply below the message
    editor.box.setFocus()
    qtbot.keyClick(editor.box, Qt.Key.Key_Backtab)
    assert QApplication.focusWidget() is user.copy_button  # back to the message's own buttons


def test_the_message_box_stays_put_when_the_count_line_appears(qtbot, scripted_window):
    """Seen under Xvfb: the first key typed in the message box showed the token count line
    under it, and the whole row (box, Send, Regenerate, Edit last) jumped up ~17 px and the
    chat above shrank; deleting the text made it jump back."""
    built = scripted_window
    chat = built.window.chat
    qtbot.wait(50)
    before = (chat.input.mapTo(chat, QPoint(0, 0)).y(), chat.scroll.height())
    assert not chat.count_label.isVisible()
    chat.input.setPlainText("hello there")
    qtbot.waitUntil(chat.count_label.isVisible)
    qtbot.wait(50)
    assert (chat.input.mapTo(chat, QPoint(0, 0)).y(), chat.scroll.height()) == before


def test_an_export_is_not_named_with_the_titles_ellipsis():
    """Seen in the export dialog: a long first message's title is cut with "…", and the file
    was offered as "Write a short Python function that adds two numbers, in a c….json"."""
    title = "Write a short Python function that adds two numbers, in a c…"
    assert (
        file_name(title, "json")
        == "Write a short Python function that adds two numbers, in a c.json"
    )


def test_a_panels_key_puts_the_focus_on_its_first_control(qtbot, scripted_window):
    """Seen under Xvfb: Ctrl+2 (Settings) and Ctrl+3 (Token inspector) put the focus, and the
    ring, on the panel's whole scrolling area; one more Tab reached the first control, although
    the key's handler means "its first control". (A panel with no control yet, such as Pipeline
    before a reply, keeps the focus on its area.)"""
    window = scripted_window.window
    window.activateWindow()
    for attr, _title, key in PANELS[:3]:
        press(qtbot, window, key)
        focused = QApplication.focusWidget()
        dock = getattr(window, attr)
        assert dock.isAncestorOf(focused), attr
        assert not isinstance(focused, QScrollArea), (attr, type(focused).__name__)
    press(qtbot, window, "Ctrl+2")
    assert QApplication.focusWidget() is first_stop(window.settings.findChild(QScrollArea).widget())


def test_esc_in_the_search_box_clears_the_search_before_it_stops(qtbot, scripted_window):
    """QA: Esc in the chat search box ran the window's Stop and left the search as it was. Esc
    clears a search first (a browser's find bar does); in an empty box it is Stop again."""
    built = scripted_window
    chats = built.window.conversations
    stops: list[bool] = []
    built.window.stop_shortcut.connect(lambda: stops.append(True))
    built.window.show()
    chats.search.setFocus()
    chats.search.setText("apples")
    qtbot.keyClick(chats.search, Qt.Key.Key_Escape)
    assert chats.search.text() == "" and stops == []
    qtbot.keyClick(chats.search, Qt.Key.Key_Escape)
    assert stops == [True]
