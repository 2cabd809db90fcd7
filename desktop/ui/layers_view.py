"""The Layers view (the logit lens): for the selected token's position, layer by layer, the
top 5 tokens the model would predict if it stopped after that layer, with their probabilities;
the final prediction is marked from the layer where it becomes the top prediction for good.

A view: fed `show_result(InsideResult)`, `show_message(text)`, `clear()`; knows `inside_data`'s
records, not the engine or the controller.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.ui import theme
from desktop.ui.attention_view import tint
from desktop.ui.inside_data import LENS_TOP_K, InsideResult, visible_label
from desktop.ui.token_view import percent

PLACEHOLDER = "Select a token of a reply to see how its prediction forms, layer by layer."


class LayersView(QWidget):
    """The Layers tab (see the module docstring). `marked`: (row, column) of the cells that
    hold the final token from its first top layer on; `summary`: the same as a sentence."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: InsideResult | None = None
        self.marked: list[tuple[int, int]] = []
        self.summary = ""
        self.heading = QLabel(PLACEHOLDER)
        self.heading.setWordWrap(True)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, LENS_TOP_K)
        self.table.setHorizontalHeaderLabels([f"#{n + 1}" for n in range(LENS_TOP_K)])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setFont(theme.mono_font())
        self.table.setAccessibleName("Logit lens: top predictions per layer")
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.note = QLabel(
            "Each row reads the model's state after that layer through its final norm and "
            "output layer (the logit lens); the last row is the model's own prediction."
        )
        self.note.setObjectName("footer")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)
        self.clear()

    def clear(self, text: str = PLACEHOLDER) -> None:
        self.result = None
        self.marked = []
        self.summary = ""
        self.heading.setText(text)
        self.table.setRowCount(0)
        self.table.setVisible(False)
        self.note.setVisible(False)

    def show_message(self, text: str) -> None:
        """One line instead of the table (no probe graph, too long, computing...)."""
        self.clear(text)

    def show_result(self, result: InsideResult) -> None:
        self.result = result
        final, first = result.final, result.first_top_layer
        pal = self.palette()
        mark = tint(
            pal.color(QPalette.ColorRole.Base), theme.accent_color(theme.is_dark(pal)), 0.35
        )
        bold = QFont(self.table.font())
        bold.setBold(True)
        self.table.setRowCount(len(result.lens))
        self.table.setVerticalHeaderLabels([f"Layer {n + 1}" for n in range(len(result.lens))])
        self.marked = []
        for row, entries in enumerate(result.lens):
            for column, entry in enumerate(entries):
                token, prob = visible_label(entry.token), percent(entry.prob)
                item = QTableWidgetItem(f"{token}  {prob}")
                item.setToolTip(
                    f"<qt>Layer {row + 1}, #{column + 1}: “{html.escape(token)}” {prob}</qt>"
                )
                if entry.id == final.id and row + 1 >= first:
                    item.setBackground(mark)
                    item.setFont(bold)
                    self.marked.append((row, column))
                self.table.setItem(row, column, item)
        self.table.setVisible(True)
        self.note.setVisible(True)
        self.table.scrollToItem(self.table.item(first - 1, 0))  # where the final token leads
        request = result.request
        name = visible_label(final.token)
        self.summary = (
            f"The final prediction “{name}” ({percent(final.prob)}) is the top "
            f"prediction from layer {first} of {len(result.lens)} on."
        )
        chosen = (
            ""
            if request.chosen_id == final.id
            else f" The reply took “{html.escape(visible_label(request.chosen))}” here."
        )
        self.heading.setText(html.escape(self.summary) + chosen)
        self.table.setAccessibleDescription(self.summary)
