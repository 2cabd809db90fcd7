"""The two small painted figures of the Pipeline view: one bar per decode step, and the sampler
funnel of one token. Views only: they draw what they are given and know no engine or controller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.engine.events import SamplerStage, TokenStep
from desktop.ui import theme

STAGE_LABELS = {
    "repetition_penalty": "after the penalty",
    "temperature": "after temperature",
    "top_k": "after top-k",
    "top_p": "after top-p",
    "min_p": "after min-p",
}


def ordinal(rank: int) -> str:
    """1 -> "1st", 2 -> "2nd", 11 -> "11th" (rank is 1-based here)."""
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"{rank}{suffix}"


class StepBars(QWidget):
    """One bar per decode step (the step time of tokens 1..n; token 0 came from the prefill),
    the selected token's bar in the accent colour. Emits token_clicked(index) on a click."""

    token_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps: Sequence[TokenStep] = ()
        self.selected = -1
        self.setMinimumHeight(46)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Time of each decode step, ms (click a bar to pick its token)")

    def sizeHint(self) -> QSize:
        return QSize(300, 46)

    def set_steps(self, steps: Sequence[TokenStep], selected: int = -1) -> None:
        self.steps, self.selected = steps, selected
        self.update()

    def _slot(self) -> float:
        return self.width() / max(1, len(self.steps) - 1)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if len(self.steps) > 1:
            index = 1 + int(event.position().x() // self._slot())
            self.token_clicked.emit(min(index, len(self.steps) - 1))

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        dark = theme.app_is_dark()
        decode = list(self.steps[1:])
        if not decode:
            painter.setPen(theme.muted_color(dark))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no decode step yet")
            return
        top = max(step.step_ms for step in decode) or 1.0
        slot = self._slot()
        gap = 1.0 if slot > 3 else 0.0
        muted, accent = theme.muted_color(dark), theme.accent_color(dark)
        for offset, step in enumerate(decode):
            height = max(1.0, (self.height() - 2) * step.step_ms / top)
            rect = QRectF(offset * slot, self.height() - height, max(1.0, slot - gap), height)
            painter.fillRect(rect, accent if step.index == self.selected else muted)


class SamplerFunnel(QWidget):
    """The sampler chain of one token as a narrowing funnel: one row per stage, its width on a
    log scale of the candidates left (the vocabulary is the full width), the count and the share
    of the model's own probability they hold beside it; the last row is the draw."""

    ROW = 20

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chain: tuple[SamplerStage, ...] = ()
        self.vocab = 0
        self.empty_text = "no token yet"
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_chain(
        self, chain: Sequence[SamplerStage], vocab: int, empty_text: str = "no token yet"
    ) -> None:
        """chain: one token's stages in order; vocab: the width of the top row (0: unknown);
        empty_text: what the funnel says when the chain is empty (no token, or one not sampled)."""
        self.chain, self.vocab, self.empty_text = tuple(chain), vocab, empty_text
        self.setFixedHeight(self.ROW * (len(self.rows()) or 1) + 4)
        self.update()

    def rows(self) -> list[tuple[str, int, float]]:
        """(text, candidates, mass) per drawn row: the vocabulary, each stage, the draw."""
        if not self.chain:
            return []
        rows: list[tuple[str, int, float]] = []
        if self.vocab:
            rows.append((f"{self.vocab:,} in the vocabulary", self.vocab, 1.0))
        before = self.vocab
        for stage in self.chain:
            if stage.stage != "draw":
                label = STAGE_LABELS.get(stage.stage, stage.stage)
                rows.append((f"{stage.candidates:,} {label}", stage.candidates, stage.mass))
                before = stage.candidates
            elif all(s.stage != "temperature" for s in self.chain):  # greedy: nothing drawn
                rows.append(("greedy: the most likely taken", 1, stage.mass))
            else:
                rank = ordinal((stage.rank or 0) + 1)
                rows.append((f"drawn: the {rank} of {before:,}", 1, stage.mass))
        return rows

    def paintEvent(self, _event: QPaintEvent) -> None:
        rows = self.rows()
        painter = QPainter(self)
        dark = theme.app_is_dark()
        text_colour = self.palette().text().color()
        if not rows:
            painter.setPen(theme.muted_color(dark))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)
            return
        widest = math.log10(max(count for _, count, _ in rows) + 1)
        bar_area = self.width() * 0.3
        accent = QColor(theme.accent_color(dark))
        for index, (text, count, mass) in enumerate(rows):
            y = index * self.ROW + 2
            share = math.log10(count + 1) / widest
            width = max(4.0, bar_area * share)
            rect = QRectF((bar_area - width) / 2, y + 2, width, self.ROW - 5)
            accent.setAlphaF(0.35 + 0.65 * (index + 1) / len(rows))
            painter.fillRect(rect, accent)
            painter.setPen(text_colour)
            room = self.width() - bar_area - 8
            painter.drawText(
                QRectF(bar_area + 8, y, room, self.ROW),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                self.row_label(text, mass, int(room)),
            )

    def row_label(self, text: str, mass: float, room: int) -> str:
        """ "TEXT · 96.1%" fitted into `room` pixels of this widget's font: the text is elided
        (…), never the share, so a narrow panel still shows every row's figure."""
        share = f" · {100 * mass:.1f}%"
        metrics = self.fontMetrics()
        left = max(0, room - metrics.horizontalAdvance(share))
        return metrics.elidedText(text, Qt.TextElideMode.ElideRight, left) + share
