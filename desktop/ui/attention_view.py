"""The Attention view: for the selected token, every earlier token tinted by how much the
selected token attends to it (one layer or the mean of all, one head or the mean of heads),
and a layers x heads grid of small maps (BertViz's model view) where a click picks that layer
and head. For an encoder-decoder model, a picker between cross-attention (to the input),
the decoder's and the encoder's self-attention.

A view: fed `show_result(InsideResult)`, `show_message(text)`, `clear()`; knows
`inside_data`'s records, not the engine or the controller.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.ui import theme
from desktop.ui.flow_layout import WrappingRow
from desktop.ui.inside_data import (
    AttentionSet,
    InsideResult,
    scale,
    top_attended,
    visible_label,
    weights,
)
from desktop.ui.token_view import percent

SINK_TEXT = "Leave the first token out of the colour scale"
MARGIN = 28  # px left of the grid for the layer numbers


def cell_size(layers: int, heads: int) -> tuple[int, int]:
    """(width, height) of one small map in px: larger for small models, at least 34 x 16."""
    return min(max(520 // max(heads, 1), 34), 90), min(max(200 // max(layers, 1), 16), 40)


def tint(base: QColor, accent: QColor, amount: float) -> QColor:
    """`base` blended towards `accent` by `amount` in [0, 1]."""
    a = min(max(amount, 0.0), 1.0)
    return QColor(
        round(base.red() + (accent.red() - base.red()) * a),
        round(base.green() + (accent.green() - base.green()) * a),
        round(base.blue() + (accent.blue() - base.blue()) * a),
    )


class AttentionGrid(QWidget):
    """Layers (rows) x heads (columns) of small maps, each the selected token's attention row
    (or the encoder's whole map) in that layer and head; `picked(layer, head)` on a click."""

    picked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.maps: np.ndarray | None = None  # float32[layers, heads, rows, keys]
        self.selected: tuple[int | None, int | None] = (None, None)
        self.skip_first = False
        self.cell_w, self.cell_h = cell_size(0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setToolTip("Click a map to show that layer and head")

    def set_maps(self, maps: np.ndarray | None) -> None:
        self.maps = maps
        layers, heads = (0, 0) if maps is None else maps.shape[:2]
        self.cell_w, self.cell_h = cell_size(layers, heads)
        self.setFixedSize(MARGIN + heads * self.cell_w + 2, layers * self.cell_h + 2)
        self.update()

    def cell(self, layer: int, head: int) -> QRect:
        return QRect(
            MARGIN + head * self.cell_w, layer * self.cell_h, self.cell_w - 2, self.cell_h - 2
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        if self.maps is None:
            return
        painter = QPainter(self)
        pal = self.palette()
        base = pal.color(QPalette.ColorRole.Base)
        accent = theme.accent_color(theme.is_dark(pal))
        layers, heads = self.maps.shape[:2]
        for layer in range(layers):
            painter.setPen(pal.color(QPalette.ColorRole.Text))
            label_rect = QRect(0, layer * self.cell_h, MARGIN - 4, self.cell_h)
            align = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
            painter.drawText(label_rect, align, str(layer + 1))
            for head in range(heads):
                rect = self.cell(layer, head)
                painter.drawImage(rect, self._image(self.maps[layer, head], base, accent))
                if self.selected in ((layer, head), (layer, None), (None, head)):
                    painter.setPen(accent)
                    painter.drawRect(rect.adjusted(-1, -1, 0, 0))
        painter.end()

    def _image(self, rows: np.ndarray, base: QColor, accent: QColor) -> QImage:
        """rows: float32[rows, keys] -> an image, one pixel per value, scaled by the row's max."""
        top = np.array([scale(row, self.skip_first) for row in rows])[:, None]  # (rows, 1)
        amount = np.clip(rows / top, 0.0, 1.0)[..., None]  # (rows, keys, 1)
        lo = np.array([base.red(), base.green(), base.blue()], dtype=np.float32)
        hi = np.array([accent.red(), accent.green(), accent.blue()], dtype=np.float32)
        rgb = (lo + (hi - lo) * amount).astype(np.uint8)  # (rows, keys, 3)
        rgb = np.ascontiguousarray(rgb)
        height, width = rgb.shape[:2]
        return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.maps is None or event.button() != Qt.MouseButton.LeftButton:
            return
        point = event.position().toPoint()
        layer, head = point.y() // self.cell_h, (point.x() - MARGIN) // self.cell_w
        if 0 <= layer < self.maps.shape[0] and 0 <= head < self.maps.shape[1]:
            self.picked.emit(layer, head)


class AttentionView(QWidget):
    """The Attention tab (see the module docstring). `shown`: float32[keys], the weights the
    tint shows now; `colours`: the tint per key; `top_text`: the most attended tokens as text
    (also the tint's accessible description)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: InsideResult | None = None
        self.shown = np.zeros(0, dtype=np.float32)
        self.colours: list[QColor] = []
        self.top_text = ""
        self.heading = QLabel("Select a token of a reply to see what it attends to.")
        self.heading.setWordWrap(True)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.kind = QComboBox()
        self.kind.setAccessibleName("Attention kind")
        self.layer = QComboBox()
        self.layer.setAccessibleName("Layer")
        self.head = QComboBox()
        self.head.setAccessibleName("Head")
        self.sink = QCheckBox(SINK_TEXT)
        self.sink.setToolTip(
            "Late layers often send most attention to the first token (an attention sink); "
            "leaving it out of the scale shows the rest."
        )
        self.tokens = QLabel("")
        self.tokens.setWordWrap(True)
        self.tokens.setTextFormat(Qt.TextFormat.RichText)
        self.tokens.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        font = theme.mono_font()
        font.setPointSizeF(font.pointSizeF() + 1.5)
        self.tokens.setFont(font)
        self.tokens.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.tokens.setAccessibleName("Attention of the selected token")
        self.grid = AttentionGrid()
        self.grid.setAccessibleName("Attention maps, layers by heads")
        pickers = WrappingRow()  # the pickers wrap in a narrow panel (three are 440 px wide)
        for widget in (self.kind, self.layer, self.head):
            widget.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            pickers.flow.addWidget(widget)
        pickers.flow.addStretch(1)
        tokens_area = QScrollArea()
        tokens_area.setWidgetResizable(True)
        tokens_area.setWidget(self.tokens)
        grid_area = QScrollArea()
        grid_area.setWidget(self.grid)
        self.grid_caption = QLabel("Layers × heads (click one to show it)")
        self.grid_caption.setObjectName("footer")
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(pickers)
        layout.addWidget(self.sink)
        layout.addWidget(tokens_area, 1)
        layout.addWidget(self.grid_caption)
        layout.addWidget(grid_area, 1)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.layer.currentIndexChanged.connect(self.redraw)
        self.head.currentIndexChanged.connect(self.redraw)
        self.sink.toggled.connect(self.redraw)
        self.grid.picked.connect(self.pick)
        self.clear()

    # ---- fed by the controller -----------------------------------------------------------------
    def clear(self, text: str = "Select a token of a reply to see what it attends to.") -> None:
        self.result = None
        self.heading.setText(text)
        self.tokens.setText("")
        self.grid.set_maps(None)
        self.shown = np.zeros(0, dtype=np.float32)
        self.colours = []
        self.top_text = ""
        for widget in (self.kind, self.layer, self.head, self.sink, self.grid_caption):
            widget.setVisible(False)

    def show_message(self, text: str) -> None:
        """One line instead of the maps (no probe graph, too long, computing...)."""
        self.clear(text)

    def show_result(self, result: InsideResult) -> None:
        kind = self.kind.currentIndex() if self.result is not None else 0
        layer, head = self.picked
        self.result = result
        self.kind.blockSignals(True)
        self.kind.clear()
        self.kind.addItems([s.title for s in result.sets])
        self.kind.setCurrentIndex(min(max(kind, 0), len(result.sets) - 1))
        self.kind.blockSignals(False)
        self.kind.setVisible(len(result.sets) > 1)
        for widget in (self.layer, self.head, self.sink, self.grid_caption):
            widget.setVisible(True)
        self._fill_pickers(layer, head)
        self.redraw()

    # ---- pickers -------------------------------------------------------------------------------
    @property
    def current(self) -> AttentionSet | None:
        if self.result is None:
            return None
        return self.result.sets[max(self.kind.currentIndex(), 0)]

    @property
    def picked(self) -> tuple[int | None, int | None]:
        """(layer, head), 0-based; None for the mean."""
        layer, head = self.layer.currentIndex(), self.head.currentIndex()
        return (layer - 1 if layer > 0 else None, head - 1 if head > 0 else None)

    def pick(self, layer: int | None, head: int | None) -> None:
        self.layer.setCurrentIndex(0 if layer is None else layer + 1)
        self.head.setCurrentIndex(0 if head is None else head + 1)

    def _kind_changed(self) -> None:
        self._fill_pickers(*self.picked)
        self.redraw()

    def _fill_pickers(self, layer: int | None, head: int | None) -> None:
        current = self.current
        if current is None:
            return
        layers, heads = current.maps.shape[:2]
        for combo, first, count, name in (
            (self.layer, "Mean of all layers", layers, "Layer"),
            (self.head, "Mean of heads", heads, "Head"),
        ):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([first] + [f"{name} {n + 1}" for n in range(count)])
            combo.blockSignals(False)
        self.layer.setCurrentIndex(0 if layer is None or layer >= layers else layer + 1)
        self.head.setCurrentIndex(0 if head is None or head >= heads else head + 1)

    # ---- drawing -------------------------------------------------------------------------------
    def redraw(self) -> None:
        current = self.current
        if current is None:
            return
        layer, head = self.picked
        rows = weights(current.maps, layer, head)  # (rows, keys)
        self.shown = rows.mean(axis=0)  # (keys,): the encoder's map: attention each token gets
        top = scale(self.shown, self.sink.isChecked())
        pal = self.palette()
        base = pal.color(QPalette.ColorRole.Base)
        accent = theme.accent_color(theme.is_dark(pal))
        self.colours = [tint(base, accent, float(w) / top) for w in self.shown]
        sink = self.sink.isChecked() and len(self.colours) > 1
        if sink:  # off the scale: drawn grey, its share said beside the toggle
            self.colours[0] = tint(base, theme.muted_color(theme.is_dark(pal)), 0.45)
        # the share on a line of its own: on one line the toggle set a panel too wide for 800 px
        share = f"\n(it takes {percent(float(self.shown[0]))})" if len(self.shown) else ""
        self.sink.setText(SINK_TEXT + share)
        spans = []
        for label, colour in zip(current.labels, self.colours, strict=True):
            text = visible_label(label).strip() or visible_label(label)  # chips are spaced
            spans.append(
                f'<span style="white-space:nowrap; background-color:{colour.name()}">'
                f"&nbsp;{html.escape(text)}&nbsp;</span>"
            )
        self.tokens.setText('<p style="line-height:150%">' + " ".join(spans) + "</p>")
        where = (
            f"{'all layers' if layer is None else f'layer {layer + 1}'}, "
            f"{'mean of heads' if head is None else f'head {head + 1}'}"
        )
        self.heading.setText(
            f"<b>{current.title}</b> of {html.escape(current.query)} ({where})"
            + (f", {self.result.seconds * 1000:.0f} ms" if self.result is not None else "")
        )
        best = top_attended(current.labels, self.shown)
        query = current.query[0].upper() + current.query[1:]
        self.top_text = f"{query}: most attention to " + ", ".join(
            f"“{visible_label(label)}” {percent(w)}" for label, w in best
        )
        self.tokens.setAccessibleDescription(self.top_text + f" ({where}).")
        self.tokens.setToolTip(f"<qt>{html.escape(self.top_text)}</qt>")  # tokens are not tags
        self.grid.skip_first = self.sink.isChecked()
        self.grid.selected = (layer, head)
        self.grid.set_maps(current.maps)
        self.grid.setAccessibleDescription(self.top_text)
