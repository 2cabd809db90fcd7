"""The surprisal colour scale: what "Show surprisal" colours tokens and chart bars with.

Surprisal is -log2(p) in bits. The probability scale (theme.py) puts every token under 5 % in
one bin; surprisal spreads that tail out: 4.3 bits (p = 5 %) and 15 bits (p = 0.003 %) get
different colours. The ramp is continuous from 0 to SURPRISAL_CAP bits (more is drawn as the
cap), a light-to-strong orange-red (ColorBrewer "OrRd" tints, one hue family, readable under the
common colour-vision deficiencies); the token's underline (the probability bin's non-colour cue)
stays as it is. A legend widget draws the ramp with its bits. Views only; no engine, no chat.
"""

from __future__ import annotations

import itertools
import math

from PySide6.QtCore import QPointF, QRectF, QSize
from PySide6.QtGui import (
    QColor,
    QFontMetrics,
    QLinearGradient,
    QPainter,
    QPaintEvent,
    QTextCharFormat,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.ui import theme
from desktop.ui.token_view import surprisal_bits

SURPRISAL_CAP = 16.0
"""Bits at which the ramp ends (p = 1 / 65,536); the chart caps its bars there too."""

# (bits, light-theme colour, dark-theme colour), bits rising
_STOPS: tuple[tuple[float, str, str], ...] = (
    (0.0, "#fff7ec", "#2a2c31"),
    (2.0, "#fdd49e", "#5a4020"),
    (5.0, "#fc8d59", "#8a4a10"),
    (10.0, "#e34a33", "#a8321c"),
    (SURPRISAL_CAP, "#c7301f", "#c43a22"),
)


def surprisal_fraction(prob: float) -> float:
    """Where a probability's surprisal lies on the ramp: 0 (p = 1) .. 1 (SURPRISAL_CAP bits or
    more, p = 0 included; NaN counts as 0)."""
    if math.isnan(prob):
        prob = 0.0
    bits = surprisal_bits(prob)
    return 1.0 if math.isinf(bits) else min(max(bits, 0.0), SURPRISAL_CAP) / SURPRISAL_CAP


def surprisal_colour(prob: float, dark: bool) -> QColor:
    """The ramp's colour for a token of probability `prob`, interpolated between the stops."""
    bits = surprisal_fraction(prob) * SURPRISAL_CAP
    for (low, light_a, dark_a), (high, light_b, dark_b) in itertools.pairwise(_STOPS):
        if bits <= high:
            share = (bits - low) / (high - low)
            a, b = QColor(dark_a if dark else light_a), QColor(dark_b if dark else light_b)
            return QColor.fromRgbF(
                a.redF() + (b.redF() - a.redF()) * share,
                a.greenF() + (b.greenF() - a.greenF()) * share,
                a.blueF() + (b.blueF() - a.blueF()) * share,
            )
    return QColor(_STOPS[-1][2] if dark else _STOPS[-1][1])


def surprisal_format(prob: float, dark: bool) -> QTextCharFormat:
    """A reply token's format under "Show surprisal": the ramp's background, the probability
    bin's underline (theme.token_format's non-colour cue) kept."""
    fmt = theme.token_format(prob, dark)
    fmt.setBackground(surprisal_colour(prob, dark))
    return fmt


class SurprisalLegend(QWidget):
    """The ramp from 0 bits to SURPRISAL_CAP bits, labelled, for when tokens show surprisal."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Surprisal legend")
        self.setAccessibleDescription(
            "Token background shows surprisal, from pale for 0 bits (certain) to strong red for "
            f"{SURPRISAL_CAP:.0f} bits or more; the underline still shows the probability bin"
        )
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(3 * QFontMetrics(self.font()).height() + 12)

    def sizeHint(self) -> QSize:
        return QSize(240, self.height())

    def paintEvent(self, _event: QPaintEvent) -> None:
        dark = theme.app_is_dark()
        painter = QPainter(self)
        metrics = QFontMetrics(self.font())
        painter.setPen(self.palette().text().color())
        painter.drawText(QPointF(2, 2 + metrics.ascent()), "Token backgrounds: surprisal")
        bar = QRectF(2, metrics.height() + 5, self.width() - 4, metrics.height() + 2)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for bits, light, dark_colour in _STOPS:
            gradient.setColorAt(bits / SURPRISAL_CAP, QColor(dark_colour if dark else light))
        painter.fillRect(bar, gradient)
        y = bar.bottom() + 3 + metrics.ascent()
        for bits in (0, 4, 8, 12, 16):
            x = bar.left() + bar.width() * bits / SURPRISAL_CAP
            label = f"{bits} bits" if bits == 0 else (f"≥ {bits} bits" if bits == 16 else f"{bits}")
            width = metrics.horizontalAdvance(label)
            left = min(max(bar.left(), x - width / 2), bar.right() - width)
            painter.drawText(QPointF(left, y), label)
        painter.end()
