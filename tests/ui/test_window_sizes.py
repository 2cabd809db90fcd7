"""The window at small sizes and at 150 % scale (issue 15, sizes and layout), around the scripted
model with a long reply that ends in a 135-letter word: bubbles re-wrap to the width left, their
header buttons and the tool bar stay on screen, the message box keeps a usable width, side
panels give way on a narrow window (and come back), the legend's cells never overlap."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from PySide6.QtCore import QRect
from PySide6.QtWidgets import QToolButton, QWidget

from desktop.ui.flow_layout import FlowLayout
from desktop.ui.messages import MESSAGE_BOX_MIN_WIDTH
from tests.conftest import REPO_ROOT
from tests.ui.test_window import send_and_wait
from tests.ui.window_sizes import LONG_MESSAGE, facts, use_long_reply

SCREEN_1200x900 = {
    "screens": [{"name": "Screen 1200x900", "x": 0, "y": 0, "width": 1200, "height": 900, "dpr": 1}]
}


def chat_with_a_long_reply(qtbot, built, width: int, height: int) -> dict:
    """Resizes the window, sends the long message, clicks a token; the window's facts."""
    built.window.resize(width, height)
    use_long_reply(built.model)
    send_and_wait(qtbot, built, LONG_MESSAGE)
    turns = built.controller.transcript.turns
    turns[-1].widget.body.select_span(3, emit=True)  # the inspector shows it
    chat = built.window.chat
    qtbot.waitUntil(lambda: chat.column_widget.width() <= chat.scroll.viewport().width())
    qtbot.wait(50)
    return facts(built.window, turns)


def assert_usable(f: dict, width: int, height: int) -> None:
    """What "usable" means at any size from 800x600 up (logical px)."""
    assert f["window"] == [width, height]
    viewport = f["viewport_width"]
    assert f["column_width"] <= viewport  # no part of the column hidden to the right
    assert len(f["bubbles"]) == 2
    for left, right in f["bubbles"]:
        assert 0 <= left < right <= viewport
    for body in f["bodies"]:
        assert body["text_width"] <= viewport
        assert body["widest"] <= body["text_width"] + 0.5  # the long word is broken, not cut
    # About 100 words and the 135-letter word: many lines, the word alone takes two or more.
    assert f["bodies"][1]["lines"] >= 6
    names = sorted(name for name, *_ in f["header_buttons"])
    user = ["Text", "Tokens", "Prompt", "Edit", "Copy"]
    reply = ["Tokens", "Text", "Regenerate", "Copy"]  # the reply's Tokens | Text pair included
    assert names == sorted(user + reply)
    for name, visible, left, right in f["header_buttons"]:
        assert visible and 0 <= left < right <= viewport, name
    visible, left, right = f["input"]
    assert visible and left >= 0 and right <= width
    assert right - left >= f["input_min"] == MESSAGE_BOX_MIN_WIDTH >= 200
    for name, visible, left, right in f["chat_buttons"] + f["tools"]:
        assert visible and 0 <= left < right <= width, name
    chat_width, chat_min = f["chat"]
    assert chat_width >= chat_min >= MESSAGE_BOX_MIN_WIDTH + 150  # box, its buttons, margins
    assert_legend(f)


def assert_legend(f: dict) -> None:
    """The legend's five cells: whole labels, inside the legend, none over another, the legend
    inside the inspector's width and above the next heading."""
    visible, left, right, panel_width = f["legend"]
    assert visible and 0 <= left < right <= panel_width
    legend_width, legend_height = f["legend_size"]
    cells = [(QRect(x, y, w, h), text) for x, y, w, h, text in f["legend_cells"]]
    assert len(cells) == 5
    for index, (rect, text_width) in enumerate(cells):
        assert rect.width() >= text_width + 4  # the label is whole
        assert rect.left() >= 0 and rect.right() < legend_width
        assert rect.top() >= 0 and rect.bottom() < legend_height
        for other, _ in cells[index + 1 :]:
            assert not rect.intersects(other), (rect, other)
    assert f["legend_bottom"] <= f["below_legend_top"]


def test_800x600_rewraps_and_keeps_every_control_reachable(qtbot, scripted_window):
    f = chat_with_a_long_reply(qtbot, scripted_window, 800, 600)
    assert_usable(f, 800, 600)
    # The chats side gave way; the inspector stays, at its narrowest, beside a wide chat.
    assert f["docks"]["ChatsDock"][0] is False and f["docks"]["SettingsDock"][0] is False
    assert f["docks"]["TokeninspectorDock"][0] is True
    assert f["docks"]["TokeninspectorDock"][1] < 360  # narrower than at the default size
    assert f["chat"][0] >= 480
    # The legend wraps onto a second line in the narrow inspector instead of overlapping.
    assert len({y for _x, y, *_ in f["legend_cells"]}) == 2


def test_1024x700_legend_does_not_overlap(qtbot, scripted_window):
    f = chat_with_a_long_reply(qtbot, scripted_window, 1024, 700)
    assert_usable(f, 1024, 700)
    assert all(open_ for open_, _width in f["docks"].values())  # both sides fit here


def test_at_150_percent_scale_800x600_is_as_usable(tmp_path):
    """A 1200x900 physical screen at QT_SCALE_FACTOR=1.5 (800x600 logical): the window fits the
    screen and the same facts hold. A child process: the scale is read when QApplication
    starts."""
    screen = tmp_path / "screen.json"
    screen.write_text(json.dumps(SCREEN_1200x900))
    env = dict(os.environ)
    env.update(
        QT_SCALE_FACTOR="1.5",
        QT_QPA_PLATFORM=f"offscreen:configfile={screen}",
        TOKENGLASS_HOME=str(tmp_path / "home"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "tests.ui.window_sizes"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    f = json.loads(result.stdout.strip().splitlines()[-1])
    assert f["dpr"] == 1.5
    assert_usable(f, 800, 600)  # fit_to_screen made the 1360x860 window 800x600
    assert f["docks"]["ChatsDock"][0] is False and f["docks"]["TokeninspectorDock"][0] is True


def test_a_panel_asked_for_on_a_narrow_window_is_shown_and_the_other_side_gives_way(
    qtbot, scripted_window
):
    window = scripted_window.window
    chats, inspector = window.chats_dock, window.inspector_dock
    window.resize(800, 600)
    qtbot.waitUntil(lambda: chats.isHidden() and not inspector.isHidden())
    chats.toggleViewAction().trigger()  # the tool bar's "Chats"
    qtbot.waitUntil(lambda: chats.isVisible() and inspector.isHidden())
    assert window.chat.width() >= window.chat.minimumSizeHint().width()
    inspector.toggleViewAction().trigger()  # and back
    qtbot.waitUntil(lambda: inspector.isVisible() and chats.isHidden())
    # A wide window again: the side hidden by the window comes back.
    window.resize(1360, 860)
    qtbot.waitUntil(lambda: chats.isVisible() and inspector.isVisible())
    assert window.chat.width() >= 500
    # A side the person closed stays closed when the window narrows and widens.
    chats.toggleViewAction().trigger()
    assert chats.isHidden()
    window.resize(800, 600)
    window.resize(1360, 860)
    qtbot.wait(20)
    assert chats.isHidden() and inspector.isVisible()


def test_flow_layout_wraps_a_row_of_buttons_without_overlap(qtbot):
    row = QWidget()
    qtbot.addWidget(row)
    layout = FlowLayout(row)
    first = QToolButton(text="You")
    layout.addWidget(first)
    layout.addStretch(1)
    buttons = [QToolButton(text=name) for name in ("Text", "Tokens", "Prompt", "Edit", "Copy")]
    for button in buttons:
        layout.addWidget(button)
    one_line = layout.sizeHint()
    row.resize(one_line.width() + 100, layout.heightForWidth(one_line.width() + 100))
    row.show()
    qtbot.waitUntil(lambda: buttons[-1].x() > 0)
    assert buttons[-1].geometry().right() == row.width() - 1  # the stretch pushes them right
    assert {b.y() for b in (first, *buttons)} == {first.y()}
    narrow = one_line.width() // 2
    assert layout.heightForWidth(narrow) > one_line.height() * 2  # three lines or more
    row.resize(narrow, layout.heightForWidth(narrow))
    qtbot.waitUntil(lambda: buttons[-1].y() > first.y())
    widgets = [first, *buttons]
    for index, widget in enumerate(widgets):
        assert widget.x() >= 0 and widget.geometry().right() < narrow
        for other in widgets[index + 1 :]:
            assert not widget.geometry().intersects(other.geometry())


def test_at_the_narrowest_window_bubble_headers_wrap_instead_of_being_cut(qtbot, scripted_window):
    """The window at its minimum width (the chat's, every side panel hidden), a reply with two
    versions from a model with a long name: its header no longer fits one line, so its buttons
    wrap under the name, all inside the chat."""
    built = scripted_window
    built.model.name = "SmolLM2-135M-Instruct-with-a-longer-name"
    built.controller.models.open_model(None)
    window = built.window
    window.resize(window.minimumWidth(), 600)
    qtbot.waitUntil(lambda: window.chats_dock.isHidden() and window.inspector_dock.isHidden())
    send_and_wait(qtbot, built, "Hi")
    with qtbot.waitSignal(built.controller.runs.reply_done, timeout=5000):
        window.chat.regenerate_button.click()
    chat = window.chat
    qtbot.waitUntil(lambda: chat.column_widget.width() <= chat.scroll.viewport().width())
    qtbot.wait(50)
    reply = built.controller.transcript.turns[-1].widget
    assert reply.versions.isVisible()  # ‹ 2/2 ›
    header = reply.layout().itemAt(0).widget()
    assert header.flow.sizeHint().width() > header.width()  # one line would not fit
    name_y = reply.model_label.y()
    assert reply.copy_button.y() > name_y  # wrapped onto a line below
    assert reply.body.y() > reply.copy_button.geometry().bottom()  # and the text below them
    viewport = chat.scroll.viewport()
    f = facts(window, built.controller.transcript.turns)
    for name, visible, left, right in f["header_buttons"]:
        assert visible and 0 <= left < right <= viewport.width(), name
    assert reply.geometry().right() < viewport.width()
    assert reply.height() >= reply.minimumSizeHint().height()  # the extra line fits the bubble


def test_panels_a_narrow_window_hid_come_back_on_the_same_tabs(qtbot, scripted_window):
    window = scripted_window.window
    window.settings_dock.raise_()
    window.pipeline_dock.raise_()
    qtbot.waitUntil(lambda: not window.pipeline_dock.visibleRegion().isEmpty())
    window.resize(window.minimumWidth(), 600)  # too narrow for either side
    qtbot.waitUntil(lambda: all(dock.isHidden() for dock in window.panel_fit.docks))
    qtbot.waitUntil(lambda: window.chat.width() == window.width())  # the chat has it all
    window.resize(1360, 860)
    qtbot.waitUntil(lambda: not any(dock.isHidden() for dock in window.panel_fit.docks))
    shown = {d.objectName() for d in window.panel_fit.docks if not d.visibleRegion().isEmpty()}
    assert shown == {"SettingsDock", "PipelineDock"}
