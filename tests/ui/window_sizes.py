"""The window's geometry at a given size, as plain numbers: where the bubbles, their header
buttons, the message box, the tool bar, the side panels and the legend's cells are. Shared by the
in-process size tests (test_window_sizes.py) and the 150 % scale run, which must set
QT_SCALE_FACTOR before a QApplication exists and so runs this module in a child process:

    QT_SCALE_FACTOR=1.5 QT_QPA_PLATFORM=offscreen:configfile=SCREEN.json \\
        python -m tests.ui.window_sizes      # prints the facts as JSON

(SCREEN.json describes a 1200x900 physical screen: 800x600 logical at 1.5.)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QEventLoop, QPoint
from PySide6.QtWidgets import QApplication, QToolBar, QToolButton, QWidget

from desktop.ui.main_window import MainWindow
from tests.ui.scripted_model import ScriptedModel

LONG_WORD = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3  # 135 letters, no break
SENTENCE = "The quick brown fox jumps over the lazy dog and keeps running through the field."
LONG_REPLY = tuple(
    (" " + word, (0.95, 0.7, 0.3, 0.1, 0.02)[index % 5])
    for index, word in enumerate(((SENTENCE + " ") * 6 + LONG_WORD).split(" "))
)
"""(text, probability) per token: a reply of about 100 words ending in one very long word."""
LONG_MESSAGE = f"Tell me a long story about {LONG_WORD} please, with many words in it. " * 2


def use_long_reply(model: ScriptedModel) -> None:
    model.reply = LONG_REPLY


def _span(widget: QWidget, viewport: QWidget) -> tuple[int, int]:
    """(left, right) of `widget` in `viewport`'s coordinates (px; right is exclusive)."""
    left = widget.mapTo(viewport, QPoint(0, 0)).x()
    return left, left + widget.width()


def _lines(body) -> dict:
    """A token view's laid-out lines: how many, the widest (px) and the width they must fit."""
    document = body.document()
    count, widest = 0, 0.0
    block = document.begin()
    while block.isValid():
        layout = block.layout()
        for index in range(layout.lineCount()):
            count += 1
            widest = max(widest, layout.lineAt(index).naturalTextWidth())
        block = block.next()
    return {"lines": count, "widest": widest, "text_width": document.textWidth()}


def facts(window: MainWindow, turns) -> dict:
    """The geometry facts of `window` (logical px) with `turns` (the transcript's turns)."""
    chat = window.chat
    viewport = chat.scroll.viewport()
    bubbles, buttons, bodies = [], [], []
    for turn in turns:
        bubble = turn.widget
        bubbles.append(_span(bubble, viewport))
        bodies.append(_lines(bubble.body))
        for button in bubble.findChildren(QToolButton):
            if button.isHidden() or button.parentWidget().isHidden():
                continue  # e.g. the version switcher of a message with one version
            buttons.append([button.text(), button.isVisible(), *_span(button, viewport)])
    toolbar = window.findChild(QToolBar)
    tools = []
    for action in toolbar.actions():
        if action.isSeparator():
            continue
        widget = toolbar.widgetForAction(action)
        tools.append([action.text(), widget.isVisible(), *_span(widget, window)])
    legend = window.inspector.legend
    scroll_viewport = legend.parentWidget().parentWidget()  # the inspector's scroll viewport
    return {
        "window": [window.width(), window.height()],
        "dpr": window.devicePixelRatio(),
        "viewport_width": viewport.width(),
        "column_width": chat.column_widget.width(),
        "bubbles": bubbles,
        "bodies": bodies,
        "header_buttons": buttons,
        "input": [chat.input.isVisible(), *_span(chat.input, window)],
        "input_min": chat.input.minimumWidth(),
        "chat_buttons": [
            [b.text(), b.isVisible(), *_span(b, window)]
            for b in (chat.send_button, chat.regenerate_button, chat.edit_button)
        ],
        "tools": tools,
        "chat": [chat.width(), chat.minimumSizeHint().width()],
        "docks": {
            dock.objectName(): [not dock.isHidden(), dock.width()]
            for dock in (window.chats_dock, window.settings_dock, window.inspector_dock)
        },
        "legend": [legend.isVisible(), *_span(legend, scroll_viewport), scroll_viewport.width()],
        "legend_cells": [
            [
                cell.x(),
                cell.y(),
                cell.width(),
                cell.height(),
                cell.fontMetrics().horizontalAdvance(cell.band.label),
            ]
            for cell in legend.cells
        ],
        "legend_size": [legend.width(), legend.height()],
        "legend_bottom": legend.y() + legend.height(),
        "below_legend_top": _next_in_column(legend).y(),
    }


def _next_in_column(widget: QWidget) -> QWidget:
    """The visible widget placed right below `widget` in its parent's column layout (a hidden
    one, such as the surprisal legend in the probability legend's place, takes no room)."""
    column = widget.parentWidget().layout()
    index = column.indexOf(widget) + 1
    while not column.itemAt(index).widget().isVisibleTo(widget.parentWidget()):
        index += 1
    return column.itemAt(index).widget()


def _run_until(app: QApplication, done, timeout_ms: int = 10_000) -> None:
    """Runs the event loop until done() (TimeoutError after timeout_ms)."""
    timer = QElapsedTimer()
    timer.start()
    while not done() and timer.elapsed() < timeout_ms:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    if not done():
        raise TimeoutError("the window did not get there in time")


def _pump(app: QApplication, ms: int) -> None:
    """Runs the event loop for `ms` (queued layout requests settle)."""
    timer = QElapsedTimer()
    timer.start()
    while timer.elapsed() < ms:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)


def main() -> int:
    """Builds the window as the app does (fitted to the screen), sends the long message to the
    scripted model, clicks a token, prints the facts as one JSON line."""
    from desktop.history import History
    from desktop.ui import settings_store
    from desktop.ui.app import build, make_application
    from tests.ui.scripted_model import scripted_loader

    app = make_application("light")
    history = History(Path(os.environ["TOKENGLASS_HOME"]) / "history.sqlite3")
    model = ScriptedModel()
    use_long_reply(model)
    window, controller = build(scripted_loader(model), None, history, settings_store.load())
    window.fit_to_screen()
    window.show()
    ready, replied = [], []
    controller.models.model_ready.connect(lambda *_: ready.append(1))
    controller.runs.reply_done.connect(lambda *_: replied.append(1))
    controller.models.open_model(None)
    _run_until(app, lambda: bool(ready))
    window.chat.input.setPlainText(LONG_MESSAGE)
    window.chat.send_button.click()
    _run_until(app, lambda: bool(replied))
    turns = controller.transcript.turns
    turns[-1].widget.body.select_span(3, emit=True)
    chat = window.chat
    _run_until(app, lambda: chat.column_widget.width() <= chat.scroll.viewport().width())
    _pump(app, 200)
    print(json.dumps(facts(window, turns)))
    controller.lifetime.shutdown()
    history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
