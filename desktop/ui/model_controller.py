"""Models and their settings: loading a model off the GUI thread, the execution provider, the
window's saved settings (`app_settings`: the defaults for new chats, whose sampling settings are
kept per model; desktop/ui/chat_settings.py shows and changes a chat's own), and the status bar's
model, provider and context labels.

Owns the model in use (handed to the chat service, which runs every generation) and the one
model load that may run at a time. Knows the settings panel and the status bar; nothing about
conversations. Signals: model_ready(model), model_failed(str).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from desktop.chat_service import ChatService
from desktop.engine.errors import EngineError
from desktop.ui import settings_store
from desktop.ui.feedback import Feedback
from desktop.ui.main_window import MainWindow
from desktop.ui.settings_store import AppSettings
from desktop.ui.worker import CallWorker, prepare_thread

ModelLoader = Callable[[str | None, str], Any]
"""(model name or folder or None for the default, provider) -> a loaded ChatModel."""


def model_label(info: Any) -> str:
    """The Model box's text for a catalog ModelInfo: its own title when it has one (e.g. "Dates to
    ISO 8601 (T5, trained here)"), else "folder name · precision"."""
    title = getattr(info, "title", "") or info.name
    return title if title != info.name else f"{info.name} · {info.precision}"


class ModelController(QObject):
    model_ready = Signal(object)
    model_failed = Signal(str)

    def __init__(
        self,
        window: MainWindow,
        service: ChatService,
        feedback: Feedback,
        load_model: ModelLoader,
        list_models: Callable[[], Sequence[Any]] | None,
        settings: AppSettings,
        settings_path: Path | None,
        is_busy: Callable[[], bool],
    ) -> None:
        super().__init__(window)
        self.window = window
        self.service = service
        self.feedback = feedback
        self._load_model = load_model
        self._list_models = list_models
        self.app_settings = settings
        self._settings_path = settings_path
        self._is_busy = is_busy
        self._loading = False
        self._loading_name: str | None = None
        self._fallback = False
        self.loaders: list[tuple[CallWorker, QThread]] = []  # kept alive until their thread ends
        self.save_timer = QTimer(self, singleShot=True, interval=300)
        self.save_timer.timeout.connect(self.save_settings)
        panel = window.settings
        panel.model_chosen.connect(self.open_model)
        panel.provider_chosen.connect(self._provider_chosen)
        self._refresh_models()
        panel.set_provider(self.app_settings.provider)

    @property
    def model(self) -> Any | None:
        return self.service.model

    # ---- loading -----------------------------------------------------------------------------
    @Slot(str)
    def open_model(self, name_or_path: str | None, fallback_to_default: bool = False) -> None:
        """Loads a model off the GUI thread; the current one stays until the new one is ready.
        With `fallback_to_default` (the app's start: the last-used model may be gone), a failed
        load while no model is loaded opens the default model, with a notice saying why."""
        if self._is_busy() or self._loading:
            self.feedback.status("Wait for the current reply or load to finish.")
            return
        provider = self.app_settings.provider
        label = Path(name_or_path).name if name_or_path else "the default model"
        self.window.model_label.setText(f"Loading {label}…")
        self.window.chat.send_button.setEnabled(False)
        worker = CallWorker(lambda: self._load_model(name_or_path, provider))
        worker.succeeded.connect(self._model_loaded)
        worker.failed.connect(self._model_load_failed)
        # Connected before start: a quick thread could end before a later connect (flaky waits).
        thread = prepare_thread(worker, self)
        thread.finished.connect(self._loader_finished)
        self._loading = True
        self._loading_name = name_or_path
        self._fallback = fallback_to_default and name_or_path is not None
        self.loaders.append((worker, thread))
        thread.start()

    loader_ended = Signal()

    @Slot()
    def _loader_finished(self) -> None:
        for worker, thread in [pair for pair in self.loaders if pair[1].isFinished()]:
            self.loaders.remove((worker, thread))
            thread.deleteLater()
        self.loader_ended.emit()

    @Slot(object)
    def _model_loaded(self, model: Any) -> None:
        self._loading = False
        # remembered for the next start only once it loaded (a failed folder is not)
        self.app_settings.model = self._loading_name
        self.save_timer.start()
        old = self.service.set_model(model)
        if old is not None and old is not model:
            old.close()  # no run is in progress: loads wait for runs (open_model)
        tokenizer = getattr(model, "tokenizer", None)  # the Pipeline view's encoder input labels
        self.window.pipeline.token_label = tokenizer.token_label if tokenizer else None
        self.window.pipeline.label_model = model.name
        self.feedback.clear_load_errors()
        self._show_model_status()
        self._refresh_models()
        if model.template_note:
            self.feedback.show_notice(model.template_note)
        self.window.chat.send_button.setEnabled(True)
        self.model_ready.emit(model)

    @Slot(str)
    def _model_load_failed(self, message: str) -> None:
        self._loading = False
        self._show_model_status()
        self.window.chat.send_button.setEnabled(self.model is not None)
        failed = self._loading_name
        if self.model is None and failed is not None and self._fallback:
            # No model at all (e.g. the last-used one was deleted): open the default instead.
            self.feedback.show_notice(
                f"The model “{failed}” could not be loaded ({message}) "
                "Opening the default model instead."
            )
            self.model_failed.emit(message)
            self.open_model(None)
            return
        self.feedback.show_load_error(f"The model could not be loaded. {message}")
        self._refresh_models()  # the Model box goes back to the model still in use
        self.model_failed.emit(message)

    def close_model(self) -> None:
        """The window closes: the service has stopped; the model's sessions go."""
        model = self.service.set_model(None)
        if model is not None:
            model.close()

    # ---- status bar --------------------------------------------------------------------------
    def _show_model_status(self) -> None:
        w, model = self.window, self.model
        if model is None:
            w.model_label.setText("No model loaded")
            w.provider_label.setText("")
            w.context_label.setText("")
            return
        w.model_label.setText(model.name)
        info = model.provider
        actual = info.actual[0] if info.actual else "?"
        text = actual.replace("ExecutionProvider", "")
        if info.fallback_reason:
            text = f"⚠ {text} (asked for {info.requested})"
            w.provider_label.setToolTip(info.fallback_reason)
            self.feedback.status(info.fallback_reason, 15000)
        else:
            w.provider_label.setToolTip(", ".join(info.actual))
        w.provider_label.setText(text)

    @Slot(int)
    def show_context(self, used: int) -> None:
        """The status bar's "context used / size" (tokens)."""
        if self.model is not None:
            self.window.context_label.setText(f"context {used} / {self.model.context_size}")

    def _refresh_models(self) -> None:
        rows: list[tuple[str, str]] = []
        if self._list_models is not None:
            try:
                rows = [(model_label(m), m.name) for m in self._list_models()]
            except EngineError as err:
                self.feedback.show_error(str(err))
        current = self.app_settings.model or (self.model.name if self.model is not None else None)
        self.window.settings.set_models(rows, current)

    # ---- settings ----------------------------------------------------------------------------
    @Slot(str)
    def _provider_chosen(self, provider: str) -> None:
        if provider != self.app_settings.provider:
            self.app_settings.provider = provider
            self.open_model(self.app_settings.model)

    @Slot()
    def save_settings(self) -> None:
        try:
            settings_store.save(self.app_settings, self._settings_path)
        except OSError as err:
            self.feedback.status(f"Settings could not be saved: {err}", 8000)

    def flush_settings(self) -> None:
        """Saves now what the timer would have saved (the window closes)."""
        if self.save_timer.isActive():
            self.save_timer.stop()
            self.save_settings()
