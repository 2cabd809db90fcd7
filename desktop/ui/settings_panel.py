"""The settings side panel: model, execution provider, sampling settings, system prompt.

A view: `set_generation` fills the fields, `generation()` reads them back as a
`GenerationSettings`. The sampling fields and the system prompt are the chat's own ("This chat",
desktop/ui/chat_settings.py keeps them with the conversation). Signals: `generation_changed` (any
sampling field or the system prompt), `model_chosen(str)` (a catalog name or a folder path),
`provider_chosen(str)`, `reset_requested` (this chat back to the defaults), `default_requested`
(this chat's settings become the defaults for new chats).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.events import GenerationSettings
from desktop.engine.sampling import MAX_SEED
from desktop.engine.session import PROVIDER_NEEDS, available_providers
from desktop.ui.folder_dialog import model_folder_dialog
from desktop.ui.layout import fill_with_scrolling

RANDOM_SEED = -1


def provider_tooltip(available: Sequence[str]) -> str:
    """The provider box's tooltip: what auto does, and what each provider missing from
    `available` (this build's choices, see available_providers) would need."""
    lines = ["auto: the fastest provider this ONNX Runtime build has, else CPU."]
    lines += [
        f"{name}: not in this build; needs {need}."
        for name, need in PROVIDER_NEEDS.items()
        if name not in available
    ]
    return "\n".join(lines)


class SettingsPanel(QWidget):
    generation_changed = Signal()
    model_chosen = Signal(str)
    provider_chosen = Signal(str)
    reset_requested = Signal()
    default_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settings")
        self._filling = False

        self.model = QComboBox()
        self.model.setAccessibleName("Model")
        self.browse = QPushButton("Open folder…")
        self.browse.clicked.connect(self._browse)
        self.folder_dialog: QFileDialog | None = None  # the "Open folder…" dialog while it is open
        self.provider = QComboBox()
        self.provider.addItems(available_providers())  # only what this ONNX Runtime build has
        self.provider.setAccessibleName("Execution provider")
        self.provider.setToolTip(provider_tooltip(available_providers()))

        self.temperature = _double(0.0, 5.0, 0.05, 2, "0 = greedy")
        self.top_k = _int(0, 100000, "0 = off")
        self.top_p = _double(0.0, 1.0, 0.01, 3, "1 = off")
        self.min_p = _double(0.0, 1.0, 0.01, 3, "0 = off")
        self.repetition_penalty = _double(0.5, 3.0, 0.05, 2, "1 = off")
        self.seed = _int(RANDOM_SEED, MAX_SEED, "random")
        self.seed.setSpecialValueText("random")
        self.max_new_tokens = _int(1, 32768, "")
        self.top_logprobs = _int(1, 50, "")
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText("System prompt (optional)")
        self.system_prompt.setFixedHeight(90)
        self.system_prompt.setAccessibleName("System prompt")
        self.reset = QPushButton("Reset to defaults")
        self.reset.setToolTip("This chat goes back to the settings new chats start with.")
        self.reset.clicked.connect(self.reset_requested)
        self.make_default = QPushButton("Use as default for new chats")
        self.make_default.setToolTip("New chats start with this chat's settings.")
        self.make_default.clicked.connect(self.default_requested)
        self.scope = QLabel("This chat")  # the fields below belong to the chat on screen
        self.scope.setObjectName("heading")
        self.template_note = QLabel("")  # the template's own system prompt, when the box is empty
        self.template_note.setObjectName("muted")
        self.template_note.setWordWrap(True)
        self.template_note.hide()
        self.source = QLabel("")
        self.source.setObjectName("muted")
        self.source.setWordWrap(True)

        # The model box has a row of its own, the dock's full width, so a name such as
        # "SmolLM2-135M-Instruct · q4" is read whole; the form below needs only label + number.
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setMinimumContentsLength(8)
        model_label = QLabel("Model")
        model_label.setBuddy(self.model)
        browse_row = QHBoxLayout()
        browse_row.addWidget(model_label)
        browse_row.addStretch(1)
        browse_row.addWidget(self.browse)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Provider", self.provider)
        form.addRow(self.scope)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-k", self.top_k)
        form.addRow("Top-p", self.top_p)
        form.addRow("Min-p", self.min_p)
        form.addRow("Repetition penalty", self.repetition_penalty)
        form.addRow("Seed", self.seed)
        form.addRow("Max new tokens", self.max_new_tokens)
        form.addRow("Alternatives shown", self.top_logprobs)
        inner = QWidget()
        column = QVBoxLayout(inner)
        column.addLayout(browse_row)
        column.addWidget(self.model)
        column.addLayout(form)
        column.addWidget(QLabel("System prompt"))
        column.addWidget(self.system_prompt)
        column.addWidget(self.template_note)
        column.addWidget(self.reset)
        column.addWidget(self.make_default)
        column.addWidget(self.source)
        column.addStretch(1)
        fill_with_scrolling(self, inner)

        for box in (self.temperature, self.top_p, self.min_p, self.repetition_penalty):
            box.valueChanged.connect(self._changed)
        for box in (self.top_k, self.seed, self.max_new_tokens, self.top_logprobs):
            box.valueChanged.connect(self._changed)
        self.system_prompt.textChanged.connect(self._changed)
        self.model.activated.connect(self._model_activated)
        self.provider.activated.connect(self._provider_activated)

    # ---- filling -----------------------------------------------------------------------------
    def set_models(self, models: Sequence[tuple[str, str]], current: str | None) -> None:
        """models: (label, value) pairs, value being a catalog name or a folder path."""
        self._filling = True
        self.model.clear()
        for label, value in models:
            self.model.addItem(label, value)
        if current is not None and self.model.findData(current) < 0:
            self.model.addItem(current, current)
        if current is not None:
            self.model.setCurrentIndex(self.model.findData(current))
        self._filling = False

    def set_provider(self, provider: str) -> None:
        """Shows the saved provider; one this build lacks is listed too (the engine says it runs
        on CPU instead, see ModelController), so the box never shows another choice than the
        one in use."""
        if self.provider.findText(provider) < 0:
            self.provider.addItem(provider)
        self.provider.setCurrentText(provider)

    def set_generation(self, settings: GenerationSettings, system_prompt: str, source: str) -> None:
        self._filling = True
        self.temperature.setValue(settings.temperature)
        self.top_k.setValue(settings.top_k)
        self.top_p.setValue(settings.top_p)
        self.min_p.setValue(settings.min_p)
        self.repetition_penalty.setValue(settings.repetition_penalty)
        self.seed.setValue(RANDOM_SEED if settings.seed is None else settings.seed)
        self.max_new_tokens.setValue(settings.max_new_tokens)
        self.top_logprobs.setValue(settings.top_logprobs)
        if self.system_prompt.toPlainText() != system_prompt:
            self.system_prompt.setPlainText(system_prompt)
        self.source.setText(source)
        self._base = settings
        self._filling = False

    # ---- reading -----------------------------------------------------------------------------
    def generation(self) -> GenerationSettings:
        base = getattr(self, "_base", GenerationSettings())
        seed = self.seed.value()
        return dataclasses.replace(
            base,
            temperature=round(self.temperature.value(), 4),
            top_k=self.top_k.value(),
            top_p=round(self.top_p.value(), 4),
            min_p=round(self.min_p.value(), 4),
            repetition_penalty=round(self.repetition_penalty.value(), 4),
            seed=None if seed == RANDOM_SEED else seed,
            max_new_tokens=self.max_new_tokens.value(),
            top_logprobs=self.top_logprobs.value(),
        )

    def system_prompt_text(self) -> str:
        return self.system_prompt.toPlainText()

    # ---- slots -------------------------------------------------------------------------------
    def _changed(self, *_args) -> None:
        if not self._filling:
            self.generation_changed.emit()

    def _provider_activated(self, _index: int) -> None:
        self.provider_chosen.emit(self.provider.currentText())

    def _model_activated(self, index: int) -> None:
        value = self.model.itemData(index)
        if value:
            self.model_chosen.emit(str(value))

    def _browse(self) -> None:
        """The folder dialog, opened in the models folder (`folder_dialog`: kept while open)."""
        self.folder_dialog = model_folder_dialog(self)
        self.folder_dialog.fileSelected.connect(self._folder_chosen)
        self.folder_dialog.open()

    def _folder_chosen(self, folder: str) -> None:
        if folder:
            self.model.addItem(folder, folder)
            self.model.setCurrentIndex(self.model.count() - 1)
            self.model_chosen.emit(folder)


def _double(low: float, high: float, step: float, decimals: int, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setToolTip(tip)
    box.setMinimumWidth(70)
    return box


def _int(low: int, high: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setToolTip(tip)
    box.setMinimumWidth(70)
    return box
