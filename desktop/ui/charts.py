"""Small QPainter charts: the top-k alternatives of one step and the legend of the probability
scale (the per-token chart of a reply is token_chart.py).

Views only: they draw what they are given and emit the index a person clicked.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontMetrics,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.engine.events import Alternative
from desktop.ui import theme
from desktop.ui.flow_layout import FlowLayout
from desktop.ui.spoken import scale_text, spoken_percent, spoken_token
from desktop.ui.token_view import percent, token_label

RAW_COLOUR = {False: "#2f6fd6", True: "#5b93ea"}
SAMPLING_COLOUR = {False: "#e8871e", True: "#f0a24a"}


class AlternativesChart(QWidget):
    """Horizontal bars for the top-k alternatives of one step: the model's raw probability and,
    beside it, the probability after temperature / top-k / top-p / min-p. The chosen token is
    marked with ▶ and bold text.

    The other rows can be acted on: a click on one, or Enter on the focused one (Up/Down move the
    focus), emits alternative_activated(token id): "continue from here with this token"."""

    alternative_activated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._alternatives: tuple[Alternative, ...] = ()
        self._chosen = -1
        self.focused = -1  # row with the keyboard focus
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.setAccessibleName("Top alternatives chart")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(
            "Click an alternative (or Enter on the focused one) to continue the reply from here "
            "with that token"
        )

    def _top(self) -> float:
        """y of the first row (below the legend line)."""
        return 4.0 + QFontMetrics(self.font()).height() + 8

    def row_at(self, y: float) -> int:
        """The row under `y` (widget coordinates), or -1."""
        row = int((y - self._top()) // self.row_height()) if y >= self._top() else -1
        return row if 0 <= row < len(self._alternatives) else -1

    def _activate(self, row: int) -> None:
        if 0 <= row < len(self._alternatives) and self._alternatives[row].id != self._chosen:
            self.alternative_activated.emit(self._alternatives[row].id)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        row = self.row_at(event.position().y())
        if row >= 0:
            self.focused = row
            self.update()
            self._activate(row)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, count = event.key(), len(self._alternatives)
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and count:
            step = -1 if key == Qt.Key.Key_Up else 1
            self.focused = max(0, min(count - 1, self.focused + step))
            alt = self._alternatives[self.focused]
            self.setAccessibleDescription(
                f"{spoken_token(alt.token, alt.bytes)}, {spoken_percent(alt.prob)}: press Enter "
                "to continue from here with it"
            )
            self.update()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._activate(self.focused)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def set_step(self, alternatives: Sequence[Alternative], chosen_id: int) -> None:
        self._alternatives = tuple(alternatives)
        self._chosen = chosen_id
        self.focused = -1
        self.setAccessibleDescription(
            "; ".join(
                f"{spoken_token(a.token, a.bytes)}{', chosen' if a.id == chosen_id else ''}: "
                f"{spoken_percent(a.prob)} under the model, {spoken_percent(a.sampling_prob)} "
                "as sampled"
                for a in self._alternatives
            )
        )
        self.updateGeometry()
        self.update()

    def row_height(self) -> int:
        return int(QFontMetrics(self.font()).height() * 1.9) + 4

    def sizeHint(self) -> QSize:
        return QSize(260, max(1, len(self._alternatives)) * self.row_height() + 28)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def paintEvent(self, _event: QPaintEvent) -> None:
        dark = theme.app_is_dark()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = QFontMetrics(self.font())
        text_colour = self.palette().windowText().color()
        # Legend line.
        y = 4.0
        for x, colour, label in (
            (0, RAW_COLOUR[dark], "model"),
            (90, SAMPLING_COLOUR[dark], "sampled"),
        ):
            painter.fillRect(QRectF(x, y + 3, 10, 10), QColor(colour))
            painter.setPen(text_colour)
            painter.drawText(QPointF(x + 14, y + metrics.ascent()), label)
        y += metrics.height() + 8
        label_w = min(110, self.width() // 3)
        bar_x = label_w + 6
        bar_w = max(20, self.width() - bar_x - 58)
        half = (self.row_height() - 6) / 2
        for row_index, alt in enumerate(self._alternatives):
            chosen = alt.id == self._chosen
            if row_index == self.focused and self.hasFocus():
                painter.setPen(QPen(self.palette().highlight().color(), 1.5))
                painter.drawRoundedRect(QRectF(0.5, y - 2, self.width() - 1, 2 * half + 4), 3, 3)
            font = self.font()
            font.setBold(chosen)
            painter.setFont(font)
            painter.setPen(text_colour)
            label = ("▶ " if chosen else "") + token_label(alt.token, alt.bytes)
            if chosen and alt is self._alternatives[-1] and len(self._alternatives) > 1:
                painter.setPen(theme.muted_color(dark))
                painter.drawLine(QPointF(0, y - 2), QPointF(self.width(), y - 2))
                painter.setPen(text_colour)
            label = QFontMetrics(font).elidedText(label, Qt.TextElideMode.ElideRight, label_w)
            painter.drawText(QRectF(0, y, label_w, 2 * half), Qt.AlignmentFlag.AlignVCenter, label)
            for row, (value, colour) in enumerate(
                ((alt.prob, RAW_COLOUR[dark]), (alt.sampling_prob, SAMPLING_COLOUR[dark]))
            ):
                top = y + row * half
                painter.fillRect(
                    QRectF(bar_x, top + 1, max(1.0, bar_w * value), half - 2), QColor(colour)
                )
                painter.setPen(text_colour)
                small = self.font()
                small.setPointSizeF(max(6.0, small.pointSizeF() * 0.78))
                painter.setFont(small)
                painter.drawText(
                    QRectF(bar_x + bar_w + 4, top, 56, half),
                    Qt.AlignmentFlag.AlignVCenter,
                    percent(value),
                )
            y += self.row_height()
        painter.end()


class ScaleLegend(QWidget):
    """The probability scale: each bin's colour swatch with its underline cue and range, one cell
    widget per bin in a flow layout (cells of one width sharing the panel's width; in a narrow
    panel they wrap onto a second line instead of overlapping)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Probability legend")
        self.setAccessibleDescription(scale_text())
        layout = FlowLayout(self, spacing=4, justify=True)
        layout.setContentsMargins(2, 3, 2, 3)
        self.cells = [_LegendCell(band) for band in theme.PROBABILITY_SCALE]
        for cell in self.cells:
            layout.addWidget(cell)


class _LegendCell(QWidget):
    """One bin of the scale: its background colour, its range as text, its underline cue."""

    def __init__(self, band: theme.ProbabilityBin) -> None:
        super().__init__()
        self.band = band

    def sizeHint(self) -> QSize:
        metrics = QFontMetrics(self.font())
        return QSize(metrics.horizontalAdvance(self.band.label) + 10, metrics.height() + 4)

    def minimumSizeHint(self) -> QSize:
        hint = self.sizeHint()
        return QSize(hint.width() - 6, hint.height())  # the label still whole

    def paintEvent(self, _event: QPaintEvent) -> None:
        dark = theme.app_is_dark()
        painter = QPainter(self)
        rect = QRectF(self.rect())
        painter.fillRect(rect, QColor(self.band.dark if dark else self.band.light))
        painter.setPen(self.palette().text().color())
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self.band.label)
        _draw_underline(painter, rect, self.band.underline, dark)
        painter.end()


def _draw_underline(painter: QPainter, rect: QRectF, style, dark: bool) -> None:
    """Draws the bin's underline cue along the bottom of a legend cell."""
    from PySide6.QtGui import QTextCharFormat  # local: only the enum is needed

    pen = QPen(QColor("#f0f0f0" if dark else "#202020"), 1)
    y = rect.bottom() - 2
    left, right = rect.left() + 8, rect.right() - 8
    kind = QTextCharFormat.UnderlineStyle
    if style == kind.NoUnderline:
        return
    if style == kind.WaveUnderline:
        painter.setPen(pen)
        x = left
        while x < right:
            painter.drawLine(QPointF(x, y), QPointF(x + 2, y - 2))
            painter.drawLine(QPointF(x + 2, y - 2), QPointF(x + 4, y))
            x += 4
        return
    pen.setStyle(Qt.PenStyle.DotLine if style == kind.DotLine else Qt.PenStyle.DashLine)
    painter.setPen(pen)
    painter.drawLine(QPointF(left, y), QPointF(right, y))
