"""Keyboard and screen readers in the real window (issue 15), around the scripted model: the focus
order (nextInFocusChain and real Tab presses), the focus ring (pixels, both themes), every
shortcut of the table doing what its button does, the F1 list built from that table, and what
QAccessible says: a name for every control, no Qt enum names, bits not nats, and the selected
token's text, percentages, rank and alternatives as the inspector shows them."""

from __future__ import annotations

import enum
import re

import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QAccessible, QAction, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from desktop.ui import shortcuts, spoken, theme
from desktop.ui.shortcuts import SHORTCUTS, ShortcutsDialog, key_text
from desktop.ui.token_view import percent
from tests.ui.test_window import replies, send_and_wait


def press(qtbot, window, keys: str) -> None:
    """Types `keys` ("Ctrl+Shift+C") where the keyboard focus is, as a person would."""
    combo = QKeySequence(keys)[0]
    target = QApplication.focusWidget() or window
    qtbot.keyClick(target, combo.key(), combo.keyboardModifiers())


def walk_from_box(window) -> list[QWidget]:
    """nextInFocusChain from the message box round to it: the widgets Tab may stop on (shown,
    enabled, taking Tab focus, handing it to no proxy), in chain order. (PySide files each widget
    this returns as a child of the one asked, so a test reads no wrapper it held across a later
    deletion of bubbles; the app itself never walks the chain, see focus_order.in_tree_order.)"""
    start, found = window.chat.input, [window.chat.input]
    widget = start.nextInFocusChain()
    while widget is not start:
        takes_tab = bool(widget.focusPolicy() & Qt.FocusPolicy.TabFocus)
        if takes_tab and widget.focusProxy() is None and widget.isVisible() and widget.isEnabled():
            found.append(widget)
        widget = widget.nextInFocusChain()
    return found


def tab_through(qtbot, window, key=Qt.Key.Key_Tab, limit: int = 200) -> list[QWidget]:
    """Presses Tab (or Shift+Tab) from the message box until the focus comes back to it."""
    window.chat.input.setFocus()
    visited = []
    for _ in range(limit):
        qtbot.keyClick(QApplication.focusWidget(), key)
        widget = QApplication.focusWidget()
        if widget is window.chat.input:
            return visited
        visited.append(widget)
    raise AssertionError(f"Tab never came back to the message box: {visited[-5:]}")


@pytest.fixture
def chatted(qtbot, scripted_window):
    send_and_wait(qtbot, scripted_window, "Hello there")
    qtbot.waitUntil(lambda: scripted_window.window.chat.regenerate_button.isEnabled())
    return scripted_window


# ---- focus order ------------------------------------------------------------------------------
def test_focus_order_is_box_messages_inspector_then_side_panels(qtbot, chatted):
    window = chatted.window
    user, reply = (turn.widget for turn in chatted.controller.transcript.turns)
    chat, inspector, chats = window.chat, window.inspector, window.conversations
    named = [
        chat.input,
        chat.send_button,
        chat.regenerate_button,
        chat.edit_button,
        user.edit_button,
        user.body,
        reply.copy_button,
        reply.body,
        inspector.alternatives,
        inspector.surprisal_box,
        chats.new_button,
        chats.search,
        chats.items,
    ]
    chain = walk_from_box(window)
    assert [w for w in chain if w in named] == named
    # The Settings tab (behind Chats) and the tabs behind the inspector are not in it.
    hidden = [window.settings.temperature, window.settings.system_prompt, window.settings.reset]
    hidden += [window.attention.kind, window.layers.table]
    assert not [w for w in hidden if w in chain]
    # Real Tab presses go the same way (an exclusive button group is one stop) and back round.
    tabbed = tab_through(qtbot, window)
    assert [w for w in tabbed if w in named] == named[1:]
    assert not [w for w in hidden if w in tabbed]
    backwards = tab_through(qtbot, window, Qt.Key.Key_Backtab)
    assert backwards == tabbed[::-1]


def test_the_settings_tab_enters_the_chain_when_shown(qtbot, chatted):
    window = chatted.window
    press(qtbot, window, "Ctrl+2")
    chain = walk_from_box(window)
    settings = window.settings
    assert settings.temperature in chain and settings.system_prompt in chain
    assert window.conversations.search not in chain  # Chats is now the tab behind
    assert chain.index(window.inspector.alternatives) < chain.index(settings.temperature)
    assert chain.index(settings.temperature) < chain.index(settings.system_prompt)
    tabbed = tab_through(qtbot, window)
    assert settings.temperature in tabbed and settings.system_prompt in tabbed
    assert window.conversations.search not in tabbed


def test_a_new_message_takes_its_place_before_the_inspector(qtbot, chatted):
    send_and_wait(qtbot, chatted, "And again")
    qtbot.wait(10)  # the order is set again once the new bubbles are in
    chain = walk_from_box(chatted.window)
    bodies = [turn.widget.body for turn in chatted.controller.transcript.turns]
    positions = [chain.index(body) for body in bodies]
    assert positions == sorted(positions) and len(bodies) == 4
    assert positions[-1] < chain.index(chatted.window.inspector.alternatives)


# ---- focus ring -------------------------------------------------------------------------------
def _around(window, widget) -> QtGui.QImage:
    top_left = widget.mapTo(window, widget.rect().topLeft())
    return window.grab(QRect(top_left, widget.size()).adjusted(-3, -3, 3, 3)).toImage()


@pytest.fixture(params=["light", "dark"])
def themed(request, qapp_theme):
    theme.apply_theme(qapp_theme, request.param == "dark")
    yield request.param
    theme.apply_theme(qapp_theme, False)


def test_every_tab_stop_shows_a_focus_ring(qtbot, themed, chatted):
    window = chatted.window
    ring = window.focus_ring
    stops = tab_through(qtbot, window)
    assert len(stops) >= 12
    for widget in stops:
        other = window.chat.input if widget is not window.chat.input else window.chat.send_button
        other.setFocus()
        unfocused = _around(window, widget)
        widget.setFocus(Qt.FocusReason.TabFocusReason)
        assert ring.target is widget and ring.frame.isVisible()
        assert _around(window, widget) != unfocused, widget.accessibleName() or widget
    # A click gives the focus without a ring (the pointer shows where the person is).
    search = window.conversations.search
    qtbot.mouseClick(search, Qt.MouseButton.LeftButton)
    assert QApplication.focusWidget() is search and ring.target is None
    assert not ring.frame.isVisible()


def _contrast(one: str, two: str) -> float:
    def luminance(name: str) -> float:
        colour = QColor(name)
        channels = []
        for value in (colour.redF(), colour.greenF(), colour.blueF()):
            channels.append(value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4)
        red, green, blue = channels
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    high, low = sorted((luminance(one), luminance(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("dark", [False, True])
def test_the_ring_colour_stands_out_in_both_themes(dark):
    """WCAG 1.4.11: a focus indicator needs 3:1 against what is around it."""
    colours = theme.STYLE_VARS[dark]
    for around in ("@panel", "@input", "@bubble_user", "@bubble_assistant"):
        assert _contrast(colours["@focus"], colours[around]) >= 3.0, (dark, around)


# ---- shortcuts --------------------------------------------------------------------------------
def test_panel_search_and_message_box_keys_move_the_focus(qtbot, chatted):
    window = chatted.window
    press(qtbot, window, "Ctrl+K")
    assert QApplication.focusWidget() is window.conversations.search
    for attr, _title, key in shortcuts.PANELS:
        press(qtbot, window, key)
        dock = getattr(window, attr)
        assert not dock.visibleRegion().isEmpty(), attr
        assert dock.isAncestorOf(QApplication.focusWidget()), attr
    assert window.conversations.isHidden()  # Ctrl+2 put Settings in front of it
    press(qtbot, window, "Shift+Esc")
    assert QApplication.focusWidget() is window.chat.input
    window.chats_dock.close()  # a closed panel opens again on its key
    press(qtbot, window, "Ctrl+1")
    assert window.chats_dock.isVisible()
    assert window.conversations.isAncestorOf(QApplication.focusWidget())


def test_copy_regenerate_edit_and_new_chat_keys(qtbot, chatted):
    window, controller = chatted.window, chatted.controller
    QApplication.clipboard().clear()
    press(qtbot, window, "Ctrl+Shift+C")
    assert QApplication.clipboard().text() == "Hello, world!"
    with qtbot.waitSignal(controller.runs.reply_done, timeout=10000):
        press(qtbot, window, "Ctrl+R")
    assert controller.transcript.turns[-1].node.version == (2, 2)
    qtbot.waitUntil(lambda: window.chat.edit_button.isEnabled())
    press(qtbot, window, "Ctrl+Shift+E")  # the last message opens for editing, in its bubble
    editor = controller.editing.editor
    assert editor is not None and editor.box.toPlainText() == "Hello there"
    assert QApplication.focusWidget() is editor.box
    qtbot.keyClick(editor.box, Qt.Key.Key_Escape)  # the edit is cancelled
    assert controller.editing.editor is None
    press(qtbot, window, "Ctrl+N")
    assert controller.transcript.turns == []
    press(qtbot, window, "Ctrl+R")  # nothing to regenerate: said, not silent
    assert "not available" in window.statusBar().currentMessage()


def test_esc_stops_a_reply_from_anywhere_in_the_window(qtbot, scripted_window):
    built = scripted_window
    built.model.reply = [(f"w{i} ", 0.5) for i in range(400)]
    built.model.delay_s = 0.01
    built.controller.runs.send("go on")
    qtbot.waitUntil(lambda: len(replies(built)[-1].steps) >= 3, timeout=5000)
    built.window.conversations.search.setFocus()
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000) as blocker:
        press(qtbot, built.window, "Esc")
    assert blocker.args[0].finish_reason == "cancelled"


def test_each_table_key_is_bound_once_in_the_window(scripted_window):
    window = scripted_window.window
    bound: dict[str, list[str]] = {}
    for action in window.findChildren(QAction):
        for sequence in action.shortcuts():
            bound.setdefault(sequence.toString(), []).append(action.text())
    for shortcut in window.findChildren(QShortcut):
        bound.setdefault(shortcut.key().toString(), []).append("QShortcut")
    for entry in SHORTCUTS:
        for key in entry.keys:
            assert bound.get(QKeySequence(key).toString()) == [entry.text], (key, bound.get(key))
    assert len({key for entry in SHORTCUTS for key in entry.keys}) == sum(
        len(entry.keys) for entry in SHORTCUTS
    )


def test_f1_and_the_help_menu_list_every_binding_of_the_table(qtbot, scripted_window):
    window = scripted_window.window
    press(qtbot, window, "F1")
    dialog = window.findChild(ShortcutsDialog)
    assert dialog is not None and dialog.isVisible()
    rows = dialog.texts()
    actions = {action.text(): action for action in window.actions()}
    for entry in SHORTCUTS:
        keys_shown = key_text(entry.keys)
        assert (keys_shown, f"{entry.text}: {entry.description}") in rows
        bound = [sequence.toString() for sequence in actions[entry.text].shortcuts()]
        assert bound == [QKeySequence(key).toString() for key in entry.keys]
    assert all(row in rows for row in shortcuts.CONTROL_KEYS)
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    assert [a.text() for a in help_menu.actions()] == ["Keyboard shortcuts"]
    for attr, title, _key in shortcuts.PANELS:
        assert getattr(window, attr).windowTitle() == title


def test_the_chat_buttons_say_their_keys(scripted_window):
    chat = scripted_window.window.chat
    assert chat.regenerate_button.accessibleDescription().endswith("(Ctrl+R)")
    # (its tooltip says why it is disabled in an empty chat; test_actions_state has the key)
    assert not chat.regenerate_button.isEnabled()
    assert chat.edit_button.accessibleDescription().endswith("(Ctrl+Shift+E)")
    assert "Esc" in chat.stop_button.accessibleDescription()
    window = scripted_window.window
    assert (
        window.layers_dock.toggleViewAction().toolTip() == "Show or hide Layers (Ctrl+6 shows it)"
    )
    close = window.chats_dock.findChild(QtWidgets.QAbstractButton)
    assert _accessible(close)[0] == "Close the Chats panel"  # not Qt's "Closes the dock widget"


# ---- screen readers ---------------------------------------------------------------------------
def _qt_enum_names() -> set[str]:
    """Every Qt enum member name with an inner capital ("DotLine", "AlignLeft")."""
    names: set[str] = set()
    for module in (QtCore, QtGui, QtWidgets):
        for cls_name in dir(module):
            cls = getattr(module, cls_name)
            for attr in dir(cls) if isinstance(cls, type) else ():
                value = getattr(cls, attr, None)
                if isinstance(value, type) and issubclass(value, enum.Enum):
                    names.update(m for m in value.__members__ if re.search(r"[a-z][A-Z]", m))
    return names


def _accessible(widget: QWidget) -> tuple[str, str]:
    interface = QAccessible.queryAccessibleInterface(widget)
    assert interface is not None, widget
    return interface.text(QAccessible.Text.Name), interface.text(QAccessible.Text.Description)


def test_every_control_has_a_name_and_says_no_qt_names_and_no_nats(qtbot, chatted):
    window = chatted.window
    reply = replies(chatted)[-1]
    reply.body.setFocus()
    qtbot.keyClick(reply.body, Qt.Key.Key_Right)  # a token pinned: the views describe it
    enum_names = _qt_enum_names()
    assert {"DotLine", "WaveUnderline", "NoUnderline"} <= enum_names
    checked = 0
    for key in ("Ctrl+1", "Ctrl+2", "Ctrl+3", "Ctrl+4", "Ctrl+5", "Ctrl+6"):
        press(qtbot, window, key)  # each panel shown in turn
        for widget in window.findChildren(QWidget):
            if not widget.isVisible():  # (a panel behind a tab is hidden, see focus_order)
                continue
            name, description = _accessible(widget)
            is_control = widget.focusPolicy() & Qt.FocusPolicy.TabFocus and not widget.focusProxy()
            if is_control and widget.isEnabled():
                assert name.strip(), f"{type(widget).__name__} {widget.objectName()} has no name"
                checked += 1
            said = f"{name} {description} {widget.toolTip()}"
            if isinstance(widget, QLabel):
                said += " " + widget.text()
            words = set(re.findall(r"[A-Za-z]+", said))
            assert not words & enum_names, (widget, said)
            assert "nats" not in words, (widget, said)
    assert checked > 40


def test_the_selected_token_says_what_the_inspector_shows(qtbot, chatted):
    window = chatted.window
    reply = replies(chatted)[-1]
    reply.body.setFocus()
    for _ in range(3):
        qtbot.keyClick(reply.body, Qt.Key.Key_Right)  # token 3: " world", 30 %
    inspector = window.inspector
    assert inspector.current == 2
    _name, said = _accessible(reply.body)
    prob = inspector.values["prob"].text()  # "30.0 %"
    assert prob == "30.0 %"
    assert said.startswith("token 3: space world, 30.0 percent, rank 3; alternatives: ")
    step = reply.steps[2]
    for alt in step.top:  # the inspector's chart writes each as percent(alt.prob)
        if alt.id != step.id:
            shown = percent(alt.prob).replace(" %", " percent")
            assert f"{spoken.spoken_token(alt.token)} {shown}" in said
    _name, summary = _accessible(inspector)
    entropy, surprisal = inspector.values["entropy"].text(), inspector.values["surprisal"].text()
    assert f"entropy {entropy}" in summary and f"surprisal {surprisal}" in summary
    assert "bits" in summary and "nats" not in summary


def test_moving_the_selection_is_announced(qtbot, chatted, monkeypatch):
    reply = replies(chatted)[-1]
    said: list[str] = []
    monkeypatch.setattr(QAccessible, "isActive", lambda: True)
    monkeypatch.setattr(
        QAccessible, "updateAccessibility", lambda event: said.append(event.message())
    )
    reply.body.setFocus()
    qtbot.keyClick(reply.body, Qt.Key.Key_Right)
    qtbot.keyClick(reply.body, Qt.Key.Key_Right)
    assert said == [reply.body.spans[0].accessible, reply.body.spans[1].accessible]
    assert said[1].startswith("token 2: comma, 60.0 percent, rank 1")


@pytest.mark.parametrize(
    ("token", "data", "words"),
    [
        (" Paris", b" Paris", "space Paris"),
        ("\n\n", b"\n\n", "2 newlines"),
        ("\t", b"\t", "tab"),
        ("  ", b"  ", "2 spaces"),
        (",", b",", "comma"),
        ("😀", "😀".encode(), "grinning face"),
        ("", b"", "empty"),
        ("<F0 9F>", b"\xf0\x9f", "part of a character, bytes F0 9F"),
        (" the.", b" the.", "space the."),
    ],
)
def test_a_token_is_spelled_for_a_screen_reader(token, data, words):
    assert spoken.spoken_token(token, data) == words


def test_the_legend_says_the_underlines_in_words(qapp_theme):
    text = spoken.scale_text()
    assert "dotted underline" in text and "wavy underline" in text
    assert "under 5 percent" in text and "90 percent or more" in text


def test_no_ring_while_nothing_in_the_window_has_the_focus(qtbot):
    """A window that never got the focus (Xvfb without a window manager, a window behind another)
    shows no ring: the ring used to sit in its top-left corner, over the Help menu."""
    from desktop.ui.focus_ring import FocusRing

    window = QWidget()
    window.resize(300, 200)
    QLabel("nothing here takes the focus", window)
    qtbot.addWidget(window)
    ring = FocusRing(window)
    window.show()
    qtbot.waitExposed(window)
    assert ring.target is None
    assert not ring.frame.isVisible()
