"""The inspector's per-token chart of a reply: one bar per token, height = its probability (or
its surprisal in bits), with a value axis, token-index ticks, a hover tooltip and a caption.

Long replies: each bar is at least MIN_BAR_PX wide (3 px bar, 1 px gap) and the chart scrolls
sideways rather than squeeze 256 bars into 1 px each; nothing is aggregated, so every bar is one
token and can be hovered and clicked. While a reply streams the view stays at its newest bar
when it was there; a selected bar is scrolled into view.

A view: it draws what it is given and emits the index a person clicked (token_clicked(int)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontMetrics,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.events import TokenStep
from desktop.ui import theme
from desktop.ui.surprisal_scale import SURPRISAL_CAP, surprisal_colour, surprisal_fraction
from desktop.ui.token_view import percent, surprisal_bits, token_label

MIN_BAR_PX = 4
"""The narrowest a token's bar gets (3 px of bar and a 1 px gap); more tokens scroll."""

PLOT_PX = 84  # height of the bars' area
TICKS_PX = 16  # the token-index labels under it
_INDEX_STEPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000)


def chart_value(prob: float, surprisal: bool) -> float:
    """A bar's height as a fraction of the plot: the probability, or the surprisal in bits
    capped at SURPRISAL_CAP (a token of probability 0 is at the cap)."""
    return surprisal_fraction(prob) if surprisal else prob


def bar_tooltip(index: int, step: TokenStep, count: int) -> str:
    """A bar's tooltip: its token, index (1-based, of `count`), probability and surprisal."""
    bits = surprisal_bits(step.prob)
    shown = "∞" if math.isinf(bits) else f"{bits:.2f}"
    return (
        f"token {index + 1} of {count}: “{token_label(step.token, step.bytes)}”\n"
        f"probability {percent(step.prob)} · surprisal {shown} bits · rank {step.rank + 1}"
    )


class TokenBars(QWidget):
    """The bars themselves (inside TokenChart's scroll area). Widget coordinates: bar i spans
    x in [1 + i * w, 1 + (i + 1) * w), w = `bar_width()`."""

    token_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps: list[TokenStep] = []
        self.selected = -1
        self.surprisal = False
        self.setFixedHeight(PLOT_PX + TICKS_PX)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setAccessibleName("Probability per token")

    def set_steps(self, steps: Sequence[TokenStep]) -> None:
        """The bars of `steps` (a list is kept, not copied: a streaming reply grows in place)."""
        self.steps = steps if isinstance(steps, list) else list(steps)
        self.resized()

    def resized(self) -> None:
        """The number of bars changed: the minimum width follows, then a repaint."""
        self.setMinimumWidth(2 + len(self.steps) * MIN_BAR_PX)
        self.update()

    def bar_width(self) -> float:
        return max(float(MIN_BAR_PX), (self.width() - 2) / max(1, len(self.steps)))

    def bar_center(self, index: int) -> float:
        return 1 + (index + 0.5) * self.bar_width()

    def index_at(self, x: float) -> int:
        """The token whose bar is at `x`, or -1 (past the last bar, or no bars)."""
        index = math.floor((x - 1) / self.bar_width())
        return index if 0 <= index < len(self.steps) else -1

    def tooltip_at(self, x: float) -> str:
        index = self.index_at(x)
        return bar_tooltip(index, self.steps[index], len(self.steps)) if index >= 0 else ""

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            text = self.tooltip_at(event.pos().x())
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        index = self.index_at(event.position().x())
        if index >= 0:
            self.selected = index
            self.update()
            self.token_clicked.emit(index)

    def _colour(self, prob: float, dark: bool) -> QColor:
        if self.surprisal:
            return surprisal_colour(prob, dark)
        return QColor(theme.probability_bin(prob).bar)

    def paintEvent(self, event: QPaintEvent) -> None:
        dark = theme.app_is_dark()
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().base())
        grid = QPen(theme.muted_color(dark), 1, Qt.PenStyle.DotLine)
        painter.setPen(grid)
        for share in (0.0, 0.5, 1.0):  # the axis' ticks across the plot
            y = 2 + PLOT_PX * (1 - share) - 1
            painter.drawLine(QPointF(0, y), QPointF(self.width(), y))
        w = self.bar_width()
        gap = 1.0 if w > 3 else 0.0
        first = max(0, self.index_at(event.rect().left()))  # draw only the bars in view
        last = self.index_at(event.rect().right())
        last = len(self.steps) - 1 if last < 0 else last
        for index in range(first, last + 1):
            prob = self.steps[index].prob
            h = max(1.0, (PLOT_PX - 2) * chart_value(prob, self.surprisal))
            rect = QRectF(1 + index * w, 1 + PLOT_PX - h, w - gap, h)
            painter.fillRect(rect, self._colour(prob, dark))
        if 0 <= self.selected < len(self.steps):
            painter.setPen(QPen(self.palette().highlight().color(), 2))
            painter.drawRect(QRectF(1 + self.selected * w, 1, max(2.0, w - gap), PLOT_PX))
        self._draw_ticks(painter, w, dark)
        painter.end()

    def _draw_ticks(self, painter: QPainter, w: float, dark: bool) -> None:
        """Token indices (1-based) under the bars, every `step` tokens, >= 36 px apart."""
        if not self.steps:
            return
        small = self.font()
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.8))
        painter.setFont(small)
        painter.setPen(theme.muted_color(dark))
        metrics = QFontMetrics(small)
        step = next((s for s in _INDEX_STEPS if s * w >= 36), _INDEX_STEPS[-1])
        numbers = [1, *range(step, len(self.steps) + 1, step)]
        for number in dict.fromkeys(numbers):
            x = self.bar_center(number - 1)
            painter.drawLine(QPointF(x, PLOT_PX + 1), QPointF(x, PLOT_PX + 4))
            label = str(number)
            width = metrics.horizontalAdvance(label)
            left = max(0.0, min(x - width / 2, self.width() - width - 1.0))  # never cut off
            painter.drawText(QPointF(left, PLOT_PX + 4 + metrics.ascent()), label)


class ValueAxis(QWidget):
    """The value axis left of the bars: 0 / 50 / 100 % (or 0 / 8 / 16 bits)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.surprisal = False
        small = self.font()
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.8))
        self.setFont(small)
        self.setFixedWidth(QFontMetrics(small).horizontalAdvance("100 %") + 8)
        self.setFixedHeight(PLOT_PX + TICKS_PX)

    def labels(self) -> list[str]:
        """Top, middle, bottom."""
        if self.surprisal:
            return [f"{SURPRISAL_CAP:.0f}", f"{SURPRISAL_CAP / 2:.0f}", "0 bits"]
        return ["100 %", "50 %", "0 %"]

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(theme.muted_color(theme.app_is_dark()))
        metrics = QFontMetrics(self.font())
        for share, label in zip((1.0, 0.5, 0.0), self.labels(), strict=True):
            y = 2 + PLOT_PX * (1 - share) - 1
            baseline = min(max(metrics.ascent(), y + metrics.ascent() / 2), PLOT_PX + 2)
            x = self.width() - 4 - metrics.horizontalAdvance(label)
            painter.drawText(QPointF(x, baseline), label)
        painter.end()


class TokenChart(QWidget):
    """The per-token chart of one reply: value axis, scrolling bars, caption. Signal:
    token_clicked(int). `bars` is the TokenBars inside (hover, click, geometry)."""

    token_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bars = TokenBars()
        self.bars.token_clicked.connect(self.token_clicked)
        self.axis = ValueAxis()
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.bars)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        bar = self.scroll.horizontalScrollBar()
        self.scroll.setFixedHeight(PLOT_PX + TICKS_PX + bar.sizeHint().height())
        self._at_end = True
        bar.valueChanged.connect(self._track)
        bar.rangeChanged.connect(self._follow)
        self.caption = QLabel()
        self.caption.setObjectName("muted")
        self.caption.setWordWrap(True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.axis, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.scroll, 1)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addLayout(row)
        column.addWidget(self.caption)
        self.setAccessibleName("Probability per token")
        self._caption()

    def sizeHint(self) -> QSize:
        return QSize(300, self.scroll.height() + self.caption.sizeHint().height())

    def set_steps(self, steps: Sequence[TokenStep]) -> None:
        """The reply's records (its own list: `add_step` redraws as it grows)."""
        self.bars.selected = -1
        self.bars.set_steps(steps)
        self._at_end = True

    def add_step(self, step: TokenStep) -> None:
        """One more token: usually already in the list handed to `set_steps` (the reply's own)."""
        if len(self.bars.steps) <= step.index:
            self.bars.steps.append(step)
        self.bars.resized()

    def set_selected(self, index: int) -> None:
        self.bars.selected = index
        self.bars.update()
        if 0 <= index < len(self.bars.steps):
            x = int(self.bars.bar_center(index))
            self.scroll.ensureVisible(x, 0, int(self.bars.bar_width()) * 4 + 8, 0)

    def set_surprisal(self, on: bool) -> None:
        self.bars.surprisal = self.axis.surprisal = on
        self.bars.update()
        self.axis.update()
        self._caption()

    def _caption(self) -> None:
        if self.bars.surprisal:
            what = f"Surprisal of each token (0–{SURPRISAL_CAP:.0f} bits, higher = less likely)"
        else:
            what = "Probability of each token (0–100 %)"
        self.caption.setText(f"{what} by token index; hover a bar for its token, click to pick it")
        self.bars.setAccessibleName(what)

    def _track(self, value: int) -> None:
        self._at_end = value >= self.scroll.horizontalScrollBar().maximum() - 2

    def _follow(self, _low: int, high: int) -> None:
        if self._at_end:
            self.scroll.horizontalScrollBar().setValue(high)
