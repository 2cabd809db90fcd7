"""How replies are read: which view a reply shows, what the inspector shows when a saved chat
opens, and "Show surprisal" on the tokens as well as on the chart, remembered in the settings.

Owns three small behaviours (the views are reply_text.py, token_chart.py, surprisal_scale.py):
- a reply whose token is being inspected (clicked, reached with the arrow keys, picked on the
  chart or in the Pipeline view) shows its Tokens view, so the selected token is on screen;
- a saved chat that opens shows its last reply in the inspector (its per-token chart filled,
  no token pinned) instead of an empty chart;
- the inspector's "Show surprisal" colours every reply's tokens by surprisal (new ones too), the
  chart's bars as well, and is saved with the window's settings (AppSettings.show_surprisal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QTextCharFormat, QTextCursor

from desktop.conversation import Node
from desktop.ui import theme
from desktop.ui.main_window import MainWindow
from desktop.ui.surprisal_scale import surprisal_format
from desktop.ui.transcript import TranscriptController

TokenFormat = Callable[[float, bool], QTextCharFormat]


def recolour(widget: Any, token_format: TokenFormat) -> None:
    """Draw the tokens of a reply bubble with `token_format` (prob, dark) -> format, as one
    edit of its text, and keep it for the tokens still to come."""
    widget.token_format = token_format
    view, dark = widget.body, theme.app_is_dark()
    cursor = QTextCursor(view.document())
    cursor.beginEditBlock()
    for span, step in zip(view.spans, widget.steps, strict=False):
        if span.end > span.start:
            cursor.setPosition(span.start)
            cursor.setPosition(span.end, QTextCursor.MoveMode.KeepAnchor)
            cursor.setCharFormat(token_format(step.prob, dark))
    cursor.endEditBlock()


class ReadingController(QObject):
    """See the module docstring. inspector: the InspectorController; models: the
    ModelController (its app_settings and save timer hold the surprisal choice)."""

    def __init__(
        self,
        window: MainWindow,
        transcript: TranscriptController,
        inspector: Any,
        models: Any,
        session: Any,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.transcript = transcript
        self.inspector = inspector
        self.models = models
        box = window.inspector.surprisal_box
        box.setChecked(models.app_settings.show_surprisal)  # the chart follows its toggled()
        self._show_surprisal(box.isChecked())
        box.toggled.connect(self._surprisal_toggled)
        transcript.reply_shown.connect(self._reply_shown)
        inspector.token_shown.connect(self._token_shown)
        session.replaced.connect(self._chat_opened)  # after the inspector's reset (app.py)

    @property
    def token_format(self) -> TokenFormat:
        return (
            surprisal_format
            if self.window.inspector.surprisal_box.isChecked()
            else (theme.token_format)
        )

    def _reply_shown(self, _node: Node, widget: Any) -> None:
        widget.token_format = self.token_format  # before its tokens are drawn

    def _token_shown(self, reply: Node, _index: int) -> None:
        widget = self.transcript.widget_of(reply)
        if widget is not None and widget.mode != "tokens":
            widget.show_mode("tokens")

    @Slot(object)
    def _chat_opened(self, _conversation: Any) -> None:
        replies = [r.node for r in self.transcript.rows if r.node.role == "assistant"]
        shown = [node for node in replies if node.steps]
        if shown:
            self.inspector.inspect(shown[-1])

    @Slot(bool)
    def _surprisal_toggled(self, on: bool) -> None:
        self._show_surprisal(on)
        self.models.app_settings.show_surprisal = on
        self.models.save_timer.start()

    def _show_surprisal(self, on: bool) -> None:
        self.window.inspector.surprisal_legend.setVisible(on)
        for row in self.transcript.rows:
            if row.node.role == "assistant":
                recolour(row.widget, self.token_format)
