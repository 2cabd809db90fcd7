"""The token inspector (right dock): the pinned token's numbers, its top-k alternatives as bars
(raw model distribution beside the sampling distribution), and the per-token chart of the selected
reply. A view: the controller calls `set_reply` / `show_step`; clicks on the chart come back as
`token_clicked(index)`, and an alternative picked in the list (click, or Enter on the focused
row) as `continue_requested(token id)`: "Continue from here with this token".
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.events import Alternative, TokenStep
from desktop.ui import theme
from desktop.ui.charts import AlternativesChart, ScaleLegend
from desktop.ui.layout import fill_with_scrolling
from desktop.ui.spoken import spoken_percent, spoken_token
from desktop.ui.surprisal_scale import SurprisalLegend
from desktop.ui.token_chart import TokenChart
from desktop.ui.token_view import (
    bytes_label,
    entropy_bits,
    is_fragment,
    percent,
    surprisal_bits,
    visible_token,
)


class InspectorPanel(QWidget):
    token_clicked = Signal(int)
    continue_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspector")
        self.steps: list[TokenStep] = []
        self.current = -1
        self.picked: tuple[int, str] | None = None  # (index, the token it replaced) of a branch

        self.legend = ScaleLegend()
        self.surprisal_legend = SurprisalLegend()  # in the legend's place under "Show surprisal"
        self.surprisal_legend.setVisible(False)
        self.title = QLabel("Click a token of a reply to inspect it.")
        self.title.setObjectName("inspectorTitle")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setFont(theme.mono_font())

        self.values: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        for key, label in (
            ("prob", "Probability"),
            ("logprob", "Logprob"),
            ("sampling", "Sampling prob."),
            ("rank", "Rank"),
            ("entropy", "Entropy"),
            ("surprisal", "Surprisal"),
            ("step", "Step time"),
            ("bytes", "Bytes"),
        ):
            value = QLabel("–")
            value.setTextFormat(Qt.TextFormat.PlainText)  # bytes like <DD 80> are not a tag
            value.setWordWrap(True)  # a long token's bytes wrap in a narrow panel, never cut off
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.values[key] = value
            form.addRow(label, value)

        self.alternatives = AlternativesChart()
        self.alternatives.alternative_activated.connect(self.continue_requested)
        self.continue_hint = QLabel(
            "Click an alternative (or Enter on it) to continue from here with this token."
        )
        self.continue_hint.setObjectName("muted")
        self.continue_hint.setWordWrap(True)
        self.strip = TokenChart()
        self.strip.token_clicked.connect(self.token_clicked)
        self.surprisal_box = QCheckBox("Show surprisal instead of probability")
        self.surprisal_box.toggled.connect(self.strip.set_surprisal)

        inner = QWidget()
        column = QVBoxLayout(inner)
        column.addWidget(_heading("Probability scale"))
        column.addWidget(self.legend)
        column.addWidget(self.surprisal_legend)
        column.addWidget(_heading("Selected token"))
        column.addWidget(self.title)
        column.addLayout(form)
        column.addWidget(_heading("Top alternatives"))
        column.addWidget(self.alternatives)
        column.addWidget(self.continue_hint)
        column.addWidget(_heading("This reply"))
        column.addWidget(self.strip)
        row = QHBoxLayout()
        row.addWidget(self.surprisal_box)
        row.addStretch(1)
        column.addLayout(row)
        column.addStretch(1)

        fill_with_scrolling(self, inner)

    def set_reply(self, steps: Sequence[TokenStep]) -> None:
        """Shows the per-token chart of a reply (the list is kept, not copied, while streaming)."""
        self.steps = steps if isinstance(steps, list) else list(steps)
        self.picked = None
        self.strip.set_steps(self.steps)
        self.current = -1
        self.strip.set_selected(-1)

    def clear(self) -> None:
        """Nothing inspected (new chat, another chat opened, the reply gone)."""
        self.set_reply([])
        self.title.setText("Click a token of a reply to inspect it.")
        for value in self.values.values():
            value.setText("–")
        self.alternatives.set_step((), -1)
        self.setAccessibleDescription("")

    def add_step(self, step: TokenStep) -> None:
        self.strip.add_step(step)

    def show_step(self, index: int) -> None:
        """Pins token `index` of the current reply."""
        if not 0 <= index < len(self.steps):
            return
        self.current = index
        step = self.steps[index]
        self.strip.set_selected(index)
        fragment = bool(step.bytes) and is_fragment(step.bytes)
        shown = bytes_label(step.bytes) if fragment else visible_token(step.token)
        note = " (part of a UTF-8 character)" if fragment else ""
        if self.picked is not None and self.picked[0] == index:
            note += f"<br>picked by you in place of <b>{html.escape(self.picked[1])}</b>"
        self.title.setText(
            f"<span style='font-size:15pt'><b>{html.escape(shown)}</b></span>"
            f"<br>token {index + 1} of {len(self.steps)} · id {step.id}{note}"
        )
        bits = surprisal_bits(step.prob)
        self.values["prob"].setText(percent(step.prob))
        self.values["logprob"].setText(f"{step.logprob:.4f}")
        self.values["sampling"].setText(percent(step.sampling_prob))
        self.values["rank"].setText(
            f"{step.rank + 1}" + (" (most likely)" if step.rank == 0 else "")
        )
        self.values["entropy"].setText(f"{entropy_bits(step.entropy):.3f} bits")
        self.values["surprisal"].setText(f"{bits:.2f} bits")
        self.values["step"].setText(
            f"{step.step_ms:.1f} ms" + (" (prefill)" if index == 0 else " (decode step)")
        )
        self.values["bytes"].setText(bytes_label(step.bytes) if step.bytes else "–")
        rows = tuple(step.top)
        if all(alt.id != step.id for alt in rows):  # the sampled token was outside the top-k
            chosen = Alternative(
                step.id, step.token, step.bytes, step.logprob, step.prob, step.sampling_prob
            )
            rows = (*rows, chosen)
        self.alternatives.set_step(rows, step.id)
        self.setAccessibleDescription(
            f"{spoken_token(step.token, step.bytes)}: {spoken_percent(step.prob)}, rank "
            f"{step.rank + 1}, entropy {entropy_bits(step.entropy):.3f} bits, surprisal "
            f"{bits:.2f} bits"
        )


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("heading")
    return label
