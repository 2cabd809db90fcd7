"""The window's behaviour: send / stop / regenerate / edit-and-resend, streaming into the views,
loading models off the GUI thread, settings, and the conversation list over `History`.

Owns the conversation on screen (a list of turns) and the one generation or model load that may
run at a time. It is handed its collaborators (the window, a model loader, the catalog, a
`History` or None, the settings) by `desktop.app`; it creates none of them itself.
Every engine or history error becomes a message in the window; the app stays usable.

This module is longer than most (about 450 lines) because it is the one place the window's
behaviours meet; the pieces it drives live in their own view modules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QApplication

from desktop.engine.errors import EngineError
from desktop.engine.events import GenerationDone, Message, PromptInfo, TokenStep
from desktop.ui import settings_store
from desktop.ui.main_window import MainWindow
from desktop.ui.messages import AssistantMessageWidget, ErrorBanner, UserMessageWidget
from desktop.ui.settings_store import AppSettings
from desktop.ui.worker import CallWorker, GenerationWorker, start_in_thread

log = logging.getLogger(__name__)

ModelLoader = Callable[[str | None, str], Any]
"""(model name or folder or None for the default, provider) -> a loaded ChatModel."""


@dataclass
class Turn:
    role: str
    widget: Any
    text: str = ""
    message_id: int | None = None
    steps: list[TokenStep] = field(default_factory=list)
    prompt: PromptInfo | None = None
    done: GenerationDone | None = None


@dataclass(frozen=True)
class DisplayPiece:
    """A token of a user message or prompt as the token view shows it."""

    id: int
    token: str
    bytes: bytes
    special: bool
    display: str


class _Run(QObject):
    """Receives one generation's signals on the GUI thread and forwards them while current.
    Slots are real slots on a GUI-thread QObject (cases G3, G4)."""

    def __init__(self, controller: ChatController, turn: Turn, worker: GenerationWorker) -> None:
        super().__init__(controller)
        self.controller = controller
        self.turn = turn
        self.worker = worker
        self.abandoned = False
        self.thread: QThread | None = None

    @Slot(object)
    def on_prompt(self, info: PromptInfo) -> None:
        if not self.abandoned:
            self.controller._on_prompt(self.turn, info)

    @Slot(object)
    def on_token(self, step: TokenStep) -> None:
        if not self.abandoned:
            self.controller._on_token(self.turn, step)

    @Slot(object)
    def on_done(self, done: GenerationDone) -> None:
        if not self.abandoned:
            self.controller._on_done(self.turn, done)

    @Slot(str)
    def on_failed(self, message: str) -> None:
        if not self.abandoned:
            self.controller._on_failed(self.turn, message)

    @Slot()
    def on_thread_finished(self) -> None:
        self.controller._on_run_finished(self)


class ChatController(QObject):
    """Signals (for the app, the self-test and tests): model_ready(object), model_failed(str),
    reply_done(object) once the worker has ended (its GenerationDone, or None when the engine
    raised before it), error_shown(str)."""

    model_ready = Signal(object)
    model_failed = Signal(str)
    reply_done = Signal(object)
    error_shown = Signal(str)

    def __init__(
        self,
        window: MainWindow,
        load_model: ModelLoader,
        list_models: Callable[[], Sequence[Any]] | None = None,
        history: Any | None = None,
        settings: AppSettings | None = None,
        settings_path: Path | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self._load_model = load_model
        self._list_models = list_models
        self.history = history
        self.app_settings = settings or AppSettings()
        self._settings_path = settings_path
        self.model: Any | None = None
        self.turns: list[Turn] = []
        self.conversation_id: int | None = None
        self.run: _Run | None = None
        self._loading = False
        self._loaders: list[tuple[CallWorker, QThread]] = []  # kept alive until their thread ends
        self._inspected: Turn | None = None
        self._save_timer = QTimer(self, singleShot=True, interval=300)
        self._save_timer.timeout.connect(self._save_settings)
        self._wire()
        self._refresh_models()
        self.refresh_conversations()
        self.window.settings.set_provider(self.app_settings.provider)
        notice = getattr(history, "notice", None)
        if notice:
            self.show_error(notice)

    def _wire(self) -> None:
        w = self.window
        w.chat.send_button.clicked.connect(self.send)
        w.chat.input.submitted.connect(self.send)
        w.chat.stop_button.clicked.connect(self.stop)
        w.chat.input.stop_requested.connect(self.stop)
        w.stop_shortcut.connect(self.stop)
        w.chat.regenerate_button.clicked.connect(self.regenerate)
        w.chat.edit_button.clicked.connect(self.edit_last)
        w.new_chat_action.triggered.connect(self.new_chat)
        w.copy_reply_action.triggered.connect(self.copy_last_reply)
        w.closing.connect(self.shutdown)
        w.inspector.token_clicked.connect(self._inspector_clicked)
        w.settings.generation_changed.connect(self._generation_changed)
        w.settings.model_chosen.connect(self.open_model)
        w.settings.provider_chosen.connect(self._provider_chosen)
        w.settings.reset_requested.connect(self._reset_settings)
        c = w.conversations
        c.new_requested.connect(self.new_chat)
        c.open_requested.connect(self.open_conversation)
        c.rename_requested.connect(self._rename)
        c.delete_requested.connect(self._delete)
        c.search_changed.connect(self.refresh_conversations)

    # ---- models ------------------------------------------------------------------------------
    def _refresh_models(self) -> None:
        rows: list[tuple[str, str]] = []
        if self._list_models is not None:
            try:
                rows = [(f"{m.name} · {m.precision}", m.name) for m in self._list_models()]
            except EngineError as err:
                self.show_error(str(err))
        current = self.app_settings.model or (self.model.name if self.model is not None else None)
        self.window.settings.set_models(rows, current)

    @property
    def busy(self) -> bool:
        return self.run is not None

    @Slot(str)
    def open_model(self, name_or_path: str | None) -> None:
        """Loads a model off the GUI thread; the current one stays until the new one is ready."""
        if self.busy or self._loading:
            self.window.statusBar().showMessage(
                "Wait for the current reply or load to finish.", 5000
            )
            return
        self.app_settings.model = name_or_path
        self._save_timer.start()
        provider = self.app_settings.provider
        label = Path(name_or_path).name if name_or_path else "the default model"
        self.window.model_label.setText(f"Loading {label}…")
        self.window.chat.send_button.setEnabled(False)
        worker = CallWorker(lambda: self._load_model(name_or_path, provider))
        worker.succeeded.connect(self._model_loaded)
        worker.failed.connect(self._model_load_failed)
        thread = start_in_thread(worker, self)
        thread.finished.connect(self._loader_finished)
        self._loading = True
        self._loaders.append((worker, thread))

    @Slot()
    def _loader_finished(self) -> None:
        for worker, thread in [pair for pair in self._loaders if pair[1].isFinished()]:
            self._loaders.remove((worker, thread))
            thread.deleteLater()

    @Slot(object)
    def _model_loaded(self, model: Any) -> None:
        self._loading = False
        old, self.model = self.model, model
        if old is not None and old is not model:
            old.close()
        self._show_model_status()
        self._refresh_models()
        self._fill_settings(model)
        self.window.chat.send_button.setEnabled(True)
        self.model_ready.emit(model)

    @Slot(str)
    def _model_load_failed(self, message: str) -> None:
        self._loading = False
        self._show_model_status()
        self.window.chat.send_button.setEnabled(self.model is not None)
        self.show_error(f"The model could not be loaded. {message}")
        self.model_failed.emit(message)

    def _show_model_status(self) -> None:
        w = self.window
        if self.model is None:
            w.model_label.setText("No model loaded")
            w.provider_label.setText("")
            w.context_label.setText("")
            return
        w.model_label.setText(self.model.name)
        info = self.model.provider
        actual = info.actual[0] if info.actual else "?"
        text = actual.replace("ExecutionProvider", "")
        if info.fallback_reason:
            text = f"⚠ {text} (asked for {info.requested})"
            w.provider_label.setToolTip(info.fallback_reason)
            w.statusBar().showMessage(info.fallback_reason, 15000)
        else:
            w.provider_label.setToolTip(", ".join(info.actual))
        w.provider_label.setText(text)
        self._show_context(0)

    def _show_context(self, used: int) -> None:
        if self.model is not None:
            self.window.context_label.setText(f"context {used} / {self.model.context_size}")

    def _fill_settings(self, model: Any) -> None:
        defaults = model.default_settings()
        settings = self.app_settings.generation_for(model.name, defaults)
        self.window.settings.set_generation(
            settings,
            self.app_settings.system_prompt,
            f"Defaults from {model.name}'s generation_config.json.",
        )

    # ---- settings ----------------------------------------------------------------------------
    @Slot()
    def _generation_changed(self) -> None:
        if self.model is not None:
            self.app_settings.remember(self.model.name, self.window.settings.generation())
        self.app_settings.system_prompt = self.window.settings.system_prompt_text()
        self._save_timer.start()

    @Slot(str)
    def _provider_chosen(self, provider: str) -> None:
        if provider != self.app_settings.provider:
            self.app_settings.provider = provider
            self.open_model(self.app_settings.model)

    @Slot()
    def _reset_settings(self) -> None:
        if self.model is not None:
            self.app_settings.generation.pop(self.model.name, None)
            self._fill_settings(self.model)
            self._save_timer.start()

    @Slot()
    def _save_settings(self) -> None:
        try:
            settings_store.save(self.app_settings, self._settings_path)
        except OSError as err:
            self.window.statusBar().showMessage(f"Settings could not be saved: {err}", 8000)

    # ---- sending -----------------------------------------------------------------------------
    @Slot()
    def send(self, text: str | None = None) -> bool:
        """Sends the input box's text (or `text`); returns whether a reply was started."""
        text = self.window.chat.input.toPlainText() if text is None else text
        if self.busy or not text.strip():
            return False
        if self.model is None:
            self.show_error("No model is loaded yet. Choose one in Settings.")
            return False
        self.window.chat.input.clear()
        turn = self._add_user_turn(text)
        if self.history is not None:
            conv = self._ensure_conversation(text)
            turn.message_id = self._history(lambda: self.history.add_user_message(conv, text))
        self._generate()
        return True

    def _ensure_conversation(self, first_text: str) -> int | None:
        if self.conversation_id is None:
            from desktop.history import default_title

            self.conversation_id = self._history(
                lambda: self.history.create_conversation(default_title(first_text), self.model.name)
            )
            self.refresh_conversations()
        return self.conversation_id

    def _messages(self) -> list[Message]:
        system = self.app_settings.system_prompt.strip()
        messages = [Message("system", system)] if system else []
        for turn in self.turns:
            if turn.role == "user":
                messages.append(Message("user", turn.text))
            elif turn.done is not None and turn.done.finish_reason != "error":
                messages.append(Message("assistant", "".join(s.text for s in turn.steps)))
        return messages

    def _generate(self) -> None:
        settings = self.window.settings.generation()
        self.app_settings.remember(self.model.name, settings)
        widget = AssistantMessageWidget(self.model.name)
        turn = Turn("assistant", widget)
        self._attach_assistant(turn)
        worker = GenerationWorker(self.model, self._messages(), settings)
        run = _Run(self, turn, worker)
        worker.prompt_ready.connect(run.on_prompt)
        worker.token.connect(run.on_token)
        worker.done.connect(run.on_done)
        worker.failed.connect(run.on_failed)
        self.run = run
        self._inspect(turn)
        self.window.chat.set_busy(True)
        run.thread = start_in_thread(worker, self)
        run.thread.finished.connect(run.on_thread_finished)

    def _add_user_turn(self, text: str, message_id: int | None = None) -> Turn:
        widget = UserMessageWidget(text)
        turn = Turn("user", widget, text=text, message_id=message_id)
        widget.view_mode_changed.connect(self._user_view_mode)
        widget.copy_requested.connect(self._copy_turn)
        widget.edit_requested.connect(self.edit_last)
        self.turns.append(turn)
        self.window.chat.add_bubble(widget)
        self._mark_last()
        return turn

    def _attach_assistant(self, turn: Turn) -> None:
        widget = turn.widget
        widget.token_selected.connect(self._reply_token_selected)
        widget.copy_requested.connect(self._copy_turn)
        widget.regenerate_requested.connect(self.regenerate)
        self.turns.append(turn)
        self.window.chat.add_bubble(widget)
        self._mark_last()

    def _mark_last(self) -> None:
        last_user = max((i for i, t in enumerate(self.turns) if t.role == "user"), default=-1)
        for index, turn in enumerate(self.turns):
            turn.widget.set_last(index == len(self.turns) - 1 or index == last_user)

    # ---- streaming slots (called by _Run on the GUI thread) ----------------------------------
    def _on_prompt(self, turn: Turn, info: PromptInfo) -> None:
        turn.prompt = info
        turn.widget.set_reading(len(info.prompt_ids), info.dropped_messages)
        self._show_context(len(info.prompt_ids))
        user = self._user_before(turn)
        if user is not None:
            user.prompt = info
            user.widget.enable_prompt(True)

    def _on_token(self, turn: Turn, step: TokenStep) -> None:
        turn.widget.append_step(step)
        turn.steps = turn.widget.steps
        if self._inspected is turn:
            self.window.inspector.add_step(step)
        if turn.prompt is not None and step.index % 8 == 0:
            self._show_context(len(turn.prompt.prompt_ids) + step.index + 1)

    def _on_done(self, turn: Turn, done: GenerationDone) -> None:
        turn.done = done
        partial = done.finish_reason in ("cancelled", "error")
        turn.widget.finish(done, partial)
        self._show_context(done.prompt_tokens + done.completion_tokens)
        if (
            self.history is not None
            and self.conversation_id is not None
            and (turn.steps or not done.error)
        ):
            conv, model = self.conversation_id, self.model.name
            turn.message_id = self._history(
                lambda: self.history.add_assistant_message(
                    conv, done, turn.steps, model=model, prompt=turn.prompt, partial=partial
                )
            )
            self.refresh_conversations()
        if done.error:
            self.error_shown.emit(done.error)

    def _on_failed(self, turn: Turn, message: str) -> None:
        turn.widget.show_error(message)
        self.error_shown.emit(message)

    def _on_run_finished(self, run: _Run) -> None:
        """The worker's thread ended: the window is ready for the next message."""
        if self.run is run:
            self.run = None
            self.window.chat.set_busy(False)
            self.reply_done.emit(run.turn.done)
        if run.thread is not None:
            run.thread.deleteLater()
        run.deleteLater()

    # ---- actions -----------------------------------------------------------------------------
    @Slot()
    def stop(self) -> None:
        """Asks the running reply to stop after the current step; what was generated is kept."""
        if self.run is not None:
            self.run.worker.cancel()

    @Slot()
    def regenerate(self) -> None:
        if self.busy or self.model is None or not self.turns or self.turns[-1].role != "assistant":
            return
        turn = self.turns.pop()
        self._forget(turn)
        self._generate()

    @Slot()
    def edit_last(self) -> None:
        """Puts the last user message back in the input box and removes it (and its reply)."""
        if self.busy:
            return
        users = [i for i, t in enumerate(self.turns) if t.role == "user"]
        if not users:
            return
        removed = self.turns[users[-1] :]
        del self.turns[users[-1] :]
        for turn in removed:
            self._forget(turn)
        self._mark_last()
        self.window.chat.input.setPlainText(removed[0].text)
        self.window.chat.input.setFocus()

    def _forget(self, turn: Turn) -> None:
        if self.history is not None and turn.message_id is not None and self.conversation_id:
            conv, message_id = self.conversation_id, turn.message_id
            self._history(lambda: self.history.delete_messages_from(conv, message_id))
        if self._inspected is turn:
            self._inspected = None
            self.window.inspector.set_reply([])
        self.window.chat.remove_bubble(turn.widget)

    @Slot()
    def new_chat(self) -> None:
        self._abandon_run()
        self.turns.clear()
        self.conversation_id = None
        self._inspected = None
        self.window.inspector.set_reply([])
        self.window.chat.clear_bubbles()
        self._show_context(0)
        self.refresh_conversations()

    @Slot()
    def copy_last_reply(self) -> None:
        replies = [t for t in self.turns if t.role == "assistant"]
        if replies:
            QApplication.clipboard().setText(replies[-1].widget.text)

    @Slot()
    def _copy_turn(self) -> None:
        turn = self._turn_of(self.sender())
        if turn is not None:
            text = turn.text if turn.role == "user" else turn.widget.text
            QApplication.clipboard().setText(text)
            self.window.statusBar().showMessage("Copied.", 2000)

    def show_error(self, message: str) -> None:
        self.window.chat.add_bubble(ErrorBanner(message))
        self.window.statusBar().showMessage(message, 10000)
        self.error_shown.emit(message)

    # ---- token views -------------------------------------------------------------------------
    def _turn_of(self, widget: Any) -> Turn | None:
        return next((t for t in self.turns if t.widget is widget), None)

    def _user_before(self, turn: Turn) -> Turn | None:
        index = self.turns.index(turn) if turn in self.turns else -1
        return next((t for t in reversed(self.turns[:index]) if t.role == "user"), None)

    def _inspect(self, turn: Turn) -> None:
        if self._inspected is not turn:
            self._inspected = turn
            self.window.inspector.set_reply(turn.widget.steps)

    @Slot(int)
    def _reply_token_selected(self, index: int) -> None:
        turn = self._turn_of(self.sender())
        if turn is not None:
            self._inspect(turn)
            self.window.inspector.show_step(index)
            self.window.inspector_dock.show()

    @Slot(int)
    def _inspector_clicked(self, index: int) -> None:
        if self._inspected is not None:
            self._inspected.widget.body.select_span(index)
            self.window.inspector.show_step(index)

    @Slot(str)
    def _user_view_mode(self, mode: str) -> None:
        turn = self._turn_of(self.sender())
        if turn is None:
            return
        if mode == "text" or self.model is None:
            turn.widget.show_text()
            return
        try:
            if mode == "tokens":
                pieces = display_pieces(turn.text, self.model.tokenize(turn.text))
                turn.widget.show_pieces(pieces, "tokens", f"{len(pieces)} tokens")
            elif turn.prompt is not None:
                text = turn.prompt.prompt_text
                pieces = display_pieces(text, self.model.tokenize(text))
                sent = turn.prompt.prompt_ids
                if len(sent) == len(pieces) + 1 and list(sent[1:]) == [p.id for p in pieces]:
                    # The engine added BOS in front of the rendered template (case B1).
                    pieces.insert(0, DisplayPiece(sent[0], "<BOS>", b"", True, "⟨BOS⟩"))
                note = (
                    f"The whole prompt: {len(turn.prompt.prompt_ids)} tokens as sent to the model"
                    + (
                        f", {turn.prompt.dropped_messages} oldest messages left out"
                        if turn.prompt.dropped_messages
                        else ""
                    )
                )
                turn.widget.show_pieces(pieces, "prompt", note)
        except EngineError as err:
            self.show_error(str(err))

    # ---- conversations -----------------------------------------------------------------------
    def _history(self, call: Callable[[], Any]) -> Any:
        """Runs a history call; a HistoryError becomes a message in the window."""
        try:
            return call()
        except EngineError as err:
            self.show_error(str(err))
            return None

    @Slot()
    @Slot(str)
    def refresh_conversations(self, _search: str | None = None) -> None:
        if self.history is None:
            return
        search = self.window.conversations.search.text().strip() or None
        rows = self._history(lambda: self.history.list_conversations(search)) or []
        self.window.conversations.set_rows(
            [
                (
                    c.id,
                    c.title,
                    f"{c.model} · {c.message_count} messages · {c.updated_at:%Y-%m-%d %H:%M}",
                )
                for c in rows
            ],
            self.conversation_id,
        )

    @Slot(int)
    def open_conversation(self, conv_id: int) -> None:
        if self.history is None or (conv_id == self.conversation_id and self.turns):
            return
        stored = self._history(lambda: self.history.messages(conv_id))
        if stored is None:
            return
        self.new_chat()
        self.conversation_id = conv_id
        for message in stored:
            if message.role == "user":
                self._add_user_turn(message.text, message.id)
            elif message.role == "assistant":
                self._add_stored_reply(message)
        self.refresh_conversations()

    def _add_stored_reply(self, message: Any) -> None:
        widget = AssistantMessageWidget(message.model or "")
        turn = Turn("assistant", widget, message_id=message.id, prompt=message.prompt)
        self._attach_assistant(turn)
        widget.set_steps(message.steps)
        turn.steps = widget.steps
        if message.done is not None:
            turn.done = message.done
            widget.finish(message.done, message.partial)
        else:
            widget.set_busy(False)
        user = self._user_before(turn)
        if user is not None and message.prompt is not None:
            user.prompt = message.prompt
            user.widget.enable_prompt(True)

    @Slot(int, str)
    def _rename(self, conv_id: int, title: str) -> None:
        self._history(lambda: self.history.rename_conversation(conv_id, title))
        self.refresh_conversations()

    @Slot(int)
    def _delete(self, conv_id: int) -> None:
        self._history(lambda: self.history.delete_conversation(conv_id))
        if conv_id == self.conversation_id:
            self.new_chat()
        self.refresh_conversations()

    # ---- lifetime ----------------------------------------------------------------------------
    def _abandon_run(self, wait_ms: int = 10000) -> None:
        """Stops the running reply and waits for its thread; its late signals are ignored."""
        run = self.run
        if run is None:
            return
        run.worker.cancel()
        run.abandoned = True
        if run.thread is not None:
            run.thread.wait(wait_ms)
        self.run = None
        self.window.chat.set_busy(False)

    @Slot()
    def shutdown(self) -> None:
        """Closing the window: stop the reply, wait for a model load, close the model."""
        self._abandon_run()
        for _worker, thread in self._loaders:
            thread.wait(60000)
        if self._save_timer.isActive():
            self._save_timer.stop()
            self._save_settings()
        if self.model is not None:
            self.model.close()
            self.model = None


def display_pieces(text: str, pieces: Sequence[Any]) -> list[DisplayPiece]:
    """Pairs each token of `text` with what the chat shows for it: the characters it covers (a
    character split over several byte tokens is shown once, on its last token), or the token's
    own text for special tokens."""
    out: list[DisplayPiece] = []
    covered = 0
    for index, piece in enumerate(pieces):
        if piece.special:
            shown = piece.token
        else:
            start = max(piece.start, covered)
            end = piece.end
            if index + 1 < len(pieces) and pieces[index + 1].start < end:
                end = max(start, pieces[index + 1].start)  # the shared character goes to the next
            shown = text[start:end]
            covered = max(covered, end)
        out.append(DisplayPiece(piece.id, piece.token, piece.bytes, piece.special, shown))
    return out
