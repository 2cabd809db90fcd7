"""The window's behaviour: send / stop / regenerate / edit-and-resend, streaming into the views,
loading models off the GUI thread, settings, and the conversation list over `History`.

Owns the conversation on screen (a list of turns) and the one generation or model load that may
run at a time. It is handed its collaborators (the window, a model loader, the catalog, a
`History` or None, the settings) by `desktop.ui.app`; it creates none of them itself.
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

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication

from desktop.engine.errors import EngineError
from desktop.engine.events import GenerationDone, Message, Phase, PromptInfo, TokenStep
from desktop.engine.tokenizer import well_formed
from desktop.ui import settings_store
from desktop.ui.main_window import MainWindow
from desktop.ui.messages import (
    AssistantMessageWidget,
    ErrorBanner,
    NoticeBanner,
    UserMessageWidget,
)
from desktop.ui.settings_store import AppSettings
from desktop.ui.worker import CallWorker, GenerationWorker, prepare_thread

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
    phases: list[Phase] = field(default_factory=list)  # the reply's pipeline phases
    failed: bool = False  # a user message the engine refused (e.g. too long): not sent again


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
    Slots are real slots on a GUI-thread QObject (cases G3, G4).

    A run outlives its place on screen: after New chat or opening another chat it is `abandoned`
    (its widgets may be gone) but still collects its tokens and saves the (partial) reply to the
    conversation it was started in (`conv_id`). `replaces` is the reply a Regenerate hid: it is
    deleted from the history only once this run has produced a token.
    """

    def __init__(
        self,
        controller: ChatController,
        turn: Turn,
        worker: GenerationWorker,
        conv_id: int | None,
        model_name: str,
        replaces: Turn | None = None,
    ) -> None:
        super().__init__(controller)
        self.controller = controller
        self.turn = turn
        self.worker = worker
        self.conv_id = conv_id
        self.model_name = model_name
        self.replaces = replaces
        self.abandoned = False
        self.stopping = False
        self.thread: QThread | None = None

    @Slot(object)
    def on_prompt(self, info: PromptInfo) -> None:
        self.turn.prompt = info
        if not self.abandoned:
            self.controller._on_prompt(self.turn, info)

    @Slot(object)
    def on_phase(self, phase: Phase) -> None:
        self.turn.phases.append(phase)  # the Pipeline view shows this list when inspected
        if not self.abandoned and self.controller._inspected is self.turn:
            self.controller.window.pipeline.add_phase(phase)

    @Slot(object)
    def on_token(self, step: TokenStep) -> None:
        if self.abandoned:
            self.turn.steps.append(step)  # the widget may be gone; the reply is still saved
        else:
            self.controller._on_token(self.turn, step)

    @Slot(object)
    def on_done(self, done: GenerationDone) -> None:
        self.turn.done = done
        if self.abandoned:
            self.controller._save_reply(self, done)
        else:
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
        self._ending: list[_Run] = []  # abandoned runs whose thread has not ended yet
        self._editing: list[Turn] = []  # turns hidden by Edit last, deleted when the edit is sent
        self._close_pending = False
        self._load_banners: list[ErrorBanner] = []  # cleared once a model loads
        self._notices: list[NoticeBanner] = []  # cleared when the next message is sent
        self._loading = False
        self._loading_name: str | None = None
        self._fallback = False
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
        w.close_guard = self.may_close
        w.chat.input.textChanged.connect(self._input_changed)
        w.inspector.token_clicked.connect(self._inspector_clicked)
        w.pipeline.token_clicked.connect(self._inspector_clicked)
        w.pipeline.link_requested.connect(self._pipeline_link)
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
                rows = [(model_label(m), m.name) for m in self._list_models()]
            except EngineError as err:
                self.show_error(str(err))
        current = self.app_settings.model or (self.model.name if self.model is not None else None)
        self.window.settings.set_models(rows, current)

    @property
    def busy(self) -> bool:
        """A reply is running, or an abandoned one has not stopped yet (one generation at a
        time: the engine's model is not shared between threads)."""
        return self.run is not None or bool(self._ending)

    @Slot(str)
    def open_model(self, name_or_path: str | None, fallback_to_default: bool = False) -> None:
        """Loads a model off the GUI thread; the current one stays until the new one is ready.
        With `fallback_to_default` (the app's start: the last-used model may be gone), a failed
        load while no model is loaded opens the default model, with a notice saying why."""
        if self.busy or self._loading:
            self.window.statusBar().showMessage(
                "Wait for the current reply or load to finish.", 5000
            )
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
        self._loaders.append((worker, thread))
        thread.start()

    @Slot()
    def _loader_finished(self) -> None:
        for worker, thread in [pair for pair in self._loaders if pair[1].isFinished()]:
            self._loaders.remove((worker, thread))
            thread.deleteLater()
        self._finish_close_if_idle()

    @Slot(object)
    def _model_loaded(self, model: Any) -> None:
        self._loading = False
        # remembered for the next start only once it loaded (a failed folder is not)
        self.app_settings.model = self._loading_name
        self._save_timer.start()
        old, self.model = self.model, model
        tokenizer = getattr(model, "tokenizer", None)  # the Pipeline view's encoder input labels
        self.window.pipeline.token_label = tokenizer.token_label if tokenizer else None
        if old is not None and old is not model:
            old.close()
        for banner in self._load_banners:  # the load that failed is no longer the story
            self.window.chat.remove_bubble(banner)
        self._load_banners.clear()
        self._show_model_status()
        self._show_context_of_chat()
        self._refresh_models()
        self._fill_settings(model)
        if model.template_note:
            self.show_notice(model.template_note)
        self.window.chat.send_button.setEnabled(True)
        self._sync_buttons()
        self.model_ready.emit(model)

    @Slot(str)
    def _model_load_failed(self, message: str) -> None:
        self._loading = False
        self._show_model_status()
        self.window.chat.send_button.setEnabled(self.model is not None)
        failed = self._loading_name
        if self.model is None and failed is not None and self._fallback:
            # No model at all (e.g. the last-used one was deleted): open the default instead.
            self.show_notice(
                f"The model “{failed}” could not be loaded ({message}) "
                "Opening the default model instead."
            )
            self.model_failed.emit(message)
            self.open_model(None)
            return
        self._load_banners.append(self.show_error(f"The model could not be loaded. {message}"))
        self._refresh_models()  # the Model box goes back to the model still in use
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

    def _show_context_of_chat(self) -> None:
        """Context used by the chat on screen: the last finished reply's prompt + its tokens."""
        done = next(
            (t.done for t in reversed(self.turns) if t.role == "assistant" and t.done), None
        )
        self._show_context(done.prompt_tokens + done.completion_tokens if done else 0)

    def _sync_buttons(self) -> None:
        """Regenerate needs a last reply, Edit last a user message; neither while busy."""
        chat, busy = self.window.chat, self.busy
        last_is_reply = bool(self.turns) and self.turns[-1].role == "assistant"
        chat.regenerate_button.setEnabled(not busy and last_is_reply and self.model is not None)
        chat.edit_button.setEnabled(not busy and any(t.role == "user" for t in self.turns))

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
        text = well_formed(text)  # a pasted lone surrogate: U+FFFD, not a failed save
        if not text.strip():
            return False
        if self.busy:
            self.window.statusBar().showMessage("Wait for the current reply to stop.", 5000)
            return False
        if self.model is None:
            self.show_error("No model is loaded yet. Choose one in Settings.")
            return False
        self._apply_edit()  # before clear(): an emptied box would cancel the edit
        self.window.chat.input.clear()
        for banner in [*self._notices, *self._load_banners]:  # read by now; the chat goes on
            self.window.chat.remove_bubble(banner)
        self._notices.clear()
        self._load_banners.clear()
        turn = self._add_user_turn(text)
        if self.history is not None:
            conv = self._ensure_conversation(text)
            turn.message_id = self._history(lambda: self.history.add_user_message(conv, text))
            self.refresh_conversations()  # after the message: the list shows its count
        self._generate()
        return True

    def _ensure_conversation(self, first_text: str) -> int | None:
        if self.conversation_id is None:
            from desktop.history import default_title

            self.conversation_id = self._history(
                lambda: self.history.create_conversation(default_title(first_text), self.model.name)
            )
        return self.conversation_id

    def _messages(self) -> list[Message]:
        system = self.app_settings.system_prompt.strip()
        messages = [Message("system", system)] if system else []
        for turn in self.turns:
            if turn.role == "user" and not turn.failed:
                messages.append(Message("user", turn.text))
            elif turn.done is not None and turn.done.finish_reason != "error":
                messages.append(Message("assistant", "".join(s.text for s in turn.steps)))
        return messages

    def _generate(self, replaces: Turn | None = None) -> None:
        settings = self.window.settings.generation()
        self.app_settings.remember(self.model.name, settings)
        messages = self._messages()
        widget = AssistantMessageWidget(self.model.name)
        turn = Turn("assistant", widget)
        turn.steps = widget.steps  # one list: the widget appends, the run saves it
        self._attach_assistant(turn)
        worker = GenerationWorker(self.model, messages, settings)
        run = _Run(self, turn, worker, self.conversation_id, self.model.name, replaces)
        worker.prompt_ready.connect(run.on_prompt)
        worker.token.connect(run.on_token)
        worker.phase.connect(run.on_phase)
        worker.done.connect(run.on_done)
        worker.failed.connect(run.on_failed)
        self.run = run
        self._inspect(turn)
        self.window.chat.set_busy(True)
        self._sync_buttons()
        # Connected before start: a worker that ends at once would otherwise finish unseen and
        # reply_done would never come (the flaky test_sampler_error_is_shown_and_chat_goes_on).
        run.thread = prepare_thread(worker, self)
        run.thread.finished.connect(run.on_thread_finished)
        run.thread.start()

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
        self._sync_buttons()

    # ---- streaming slots (called by _Run on the GUI thread) ----------------------------------
    def _on_prompt(self, turn: Turn, info: PromptInfo) -> None:
        turn.widget.set_reading(len(info.prompt_ids), info.dropped_messages)
        if self._inspected is turn:
            self.window.pipeline.set_prompt(info)
        if self.run is not None and self.run.stopping and not turn.steps:
            turn.widget.reading.setText("Stopping…")
        self._show_context(len(info.prompt_ids))
        user = self._user_before(turn)
        if user is not None:
            user.prompt = info
            user.widget.enable_prompt(True)

    def _on_token(self, turn: Turn, step: TokenStep) -> None:
        turn.widget.append_step(step)
        if self._inspected is turn:
            self.window.inspector.add_step(step)
            self.window.pipeline.add_step(step)
        if turn.prompt is not None and step.index % 8 == 0:
            self._show_context(len(turn.prompt.prompt_ids) + step.index + 1)

    def _on_done(self, turn: Turn, done: GenerationDone) -> None:
        partial = done.finish_reason in ("cancelled", "error")
        run = self.run if self.run is not None and self.run.turn is turn else None
        if run is not None and run.replaces is not None and not turn.steps:
            self._restore_replaced(run, done)
            return
        turn.widget.finish(done, partial)
        self._show_context(done.prompt_tokens + done.completion_tokens)
        if run is not None:
            if run.replaces is not None:
                self.window.chat.remove_bubble(run.replaces.widget)
            self._save_reply(run, done)
        if done.error:
            self.error_shown.emit(done.error)

    def _save_reply(self, run: _Run, done: GenerationDone) -> None:
        """Saves a run's reply (partial when stopped or failed) to the conversation it started
        in; a Regenerate's previous reply is deleted only when the new one has tokens."""
        turn = run.turn
        if self.history is None or run.conv_id is None:
            return
        if run.replaces is not None:
            if not turn.steps:
                return  # stopped or failed before its first token: the previous reply stays
            if run.replaces.message_id is not None:
                conv, old_id = run.conv_id, run.replaces.message_id
                self._history(lambda: self.history.delete_messages_from(conv, old_id))
        if not turn.steps and done.error:
            return
        partial = done.finish_reason in ("cancelled", "error")
        conv, steps, phases = run.conv_id, list(turn.steps), list(turn.phases)
        turn.message_id = self._history(
            lambda: self.history.add_assistant_message(
                conv,
                done,
                steps,
                model=run.model_name,
                prompt=turn.prompt,
                partial=partial,
                phases=phases,
            )
        )
        self.refresh_conversations()

    def _restore_replaced(self, run: _Run, done: GenerationDone | None) -> None:
        """A Regenerate that ended without a token: its bubble goes, the previous reply returns."""
        turn, previous = run.turn, run.replaces
        if turn in self.turns:
            self.turns[self.turns.index(turn)] = previous
        if self._inspected is turn:
            self._reset_inspector()
        self.window.chat.remove_bubble(turn.widget)
        previous.widget.setVisible(True)
        self._mark_last()
        self._show_context_of_chat()
        if done is not None and done.error:
            self.show_error(done.error)
        else:
            self.window.statusBar().showMessage(
                "Stopped before the first token; the previous reply is kept.", 8000
            )

    def _on_failed(self, turn: Turn, message: str) -> None:
        """The engine refused before generating (e.g. the message is too long)."""
        run = self.run if self.run is not None and self.run.turn is turn else None
        if run is not None and run.replaces is not None:
            self._restore_replaced(run, None)
            self.show_error(message)
            self.error_shown.emit(message)
            return
        turn.widget.show_error(message)
        user = self._user_before(turn)
        if user is not None:
            user.failed = True
            self._unsave_failed(user)
        self.error_shown.emit(message)

    def _unsave_failed(self, user: Turn) -> None:
        """A refused message leaves no trace in the history (nor an empty chat in the list)."""
        conv = self.conversation_id
        if self.history is None or conv is None or user.message_id is None:
            return
        message_id, user.message_id = user.message_id, None
        self._history(lambda: self.history.delete_messages_from(conv, message_id))
        if not self._history(lambda: self.history.messages(conv)):
            self._history(lambda: self.history.delete_conversation(conv))
            self.conversation_id = None
        self.refresh_conversations()

    def _on_run_finished(self, run: _Run) -> None:
        """The worker's thread ended: the window is ready for the next message."""
        if run in self._ending:
            self._ending.remove(run)
        if self.run is run:
            self.run = None
        self.window.chat.set_busy(self.busy)
        self._sync_buttons()
        if not run.abandoned:
            self.reply_done.emit(run.turn.done)
        if run.thread is not None:
            run.thread.deleteLater()
        run.deleteLater()
        self._finish_close_if_idle()

    # ---- actions -----------------------------------------------------------------------------
    @Slot()
    def stop(self) -> None:
        """Asks the running reply to stop after the current step (or prefill chunk); what was
        generated is kept. The Stop button says at once that it was heard."""
        run = self.run
        if run is None or run.stopping:
            return
        run.stopping = True
        run.worker.cancel()
        self.window.chat.show_stopping()
        if not run.turn.steps:
            run.turn.widget.reading.setText("Stopping…")
        self.window.statusBar().showMessage("Stopping…", 5000)

    @Slot()
    def regenerate(self) -> None:
        """Generates the last reply again. The previous reply is hidden, not deleted: it is
        deleted (history included) once the new reply has a token, and comes back when the new
        one is stopped or fails before its first token."""
        if self.busy or self.model is None:
            return
        self._cancel_edit()  # regenerating means keeping the last message as it was
        if not self.turns or self.turns[-1].role != "assistant":
            return
        previous = self.turns.pop()
        previous.widget.setVisible(False)
        if self._inspected is previous:
            self._reset_inspector()
        self._generate(replaces=previous)

    @Slot()
    def edit_last(self) -> None:
        """Puts the last user message back in the input box and hides it (and its reply). Nothing
        is deleted until the edited message is sent; emptying the box brings them back."""
        if self.busy or self._editing:
            return
        users = [i for i, t in enumerate(self.turns) if t.role == "user"]
        if not users:
            return
        removed = self.turns[users[-1] :]
        del self.turns[users[-1] :]
        for turn in removed:
            turn.widget.setVisible(False)
            if self._inspected is turn:
                self._reset_inspector()
        self._editing = removed
        self._mark_last()
        self._show_context_of_chat()
        self.window.chat.input.setPlainText(removed[0].text)
        self.window.chat.input.moveCursor(QTextCursor.MoveOperation.End)
        self.window.chat.input.setFocus()
        self.window.statusBar().showMessage(
            "Editing your last message: sending replaces it and its reply; "
            "empty the box to keep them.",
            10000,
        )

    def _apply_edit(self) -> None:
        """The edited message is being sent: the hidden turns go, from the history too."""
        editing, self._editing = self._editing, []
        if not editing:
            return
        self.window.statusBar().clearMessage()  # the editing hint is done with
        first = editing[0]
        if self.history is not None and first.message_id is not None and self.conversation_id:
            conv, message_id = self.conversation_id, first.message_id
            self._history(lambda: self.history.delete_messages_from(conv, message_id))
        for turn in editing:
            self.window.chat.remove_bubble(turn.widget)

    @Slot()
    def _input_changed(self) -> None:
        """An edit whose text was emptied is cancelled: the hidden turns come back."""
        if self._editing and not self.window.chat.input.toPlainText().strip():
            self._cancel_edit()

    def _cancel_edit(self) -> None:
        """The turns hidden by Edit last come back, and the box no longer holds the edit."""
        if not self._editing:
            return
        editing, self._editing = self._editing, []
        self.window.statusBar().clearMessage()  # the editing hint is done with
        for turn in editing:
            turn.widget.setVisible(True)
        self.turns.extend(editing)
        self.window.chat.input.clear()
        self._mark_last()
        self._show_context_of_chat()

    def _reset_inspector(self) -> None:
        self._unhighlight_inspected()
        self._inspected = None
        self.window.inspector.clear()
        self.window.pipeline.clear()

    @Slot()
    def new_chat(self) -> None:
        """An empty chat. A running reply is stopped and saved (partial) to its own chat."""
        self._abandon_run()
        if self._editing:
            self._editing = []
            self.window.chat.input.clear()
        self.turns.clear()
        self.conversation_id = None
        self._load_banners.clear()
        self._notices.clear()
        self._reset_inspector()
        self.window.chat.clear_bubbles()
        self._show_context(0)
        self._sync_buttons()
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

    def show_error(self, message: str) -> ErrorBanner:
        banner = ErrorBanner(message)
        self.window.chat.add_bubble(banner)
        self.window.statusBar().showMessage(message, 10000)
        self.error_shown.emit(message)
        return banner

    def show_notice(self, message: str) -> None:
        """Something the person should know that is not an error (e.g. a model fallback), shown
        until the next message is sent."""
        notice = NoticeBanner(message)
        self._notices.append(notice)
        self.window.chat.add_bubble(notice)
        self.window.statusBar().showMessage(message, 15000)

    # ---- token views -------------------------------------------------------------------------
    def _turn_of(self, widget: Any) -> Turn | None:
        return next((t for t in self.turns if t.widget is widget), None)

    def _user_before(self, turn: Turn) -> Turn | None:
        index = self.turns.index(turn) if turn in self.turns else -1
        return next((t for t in reversed(self.turns[:index]) if t.role == "user"), None)

    def _inspect(self, turn: Turn) -> None:
        if self._inspected is not turn:
            self._unhighlight_inspected()  # one highlighted token in the window, not one per reply
            self._inspected = turn
            self.window.inspector.set_reply(turn.widget.steps)
            self.window.pipeline.set_reply(turn.prompt, turn.phases, turn.widget.steps)

    def _unhighlight_inspected(self) -> None:
        widget = self._inspected.widget if self._inspected is not None else None
        if widget is not None and shiboken6.isValid(widget):  # its bubble may be gone already
            widget.body.clear_selection()

    @Slot(int)
    def _reply_token_selected(self, index: int) -> None:
        turn = self._turn_of(self.sender())
        if turn is not None:
            self._inspect(turn)
            self.window.inspector.show_step(index)
            self.window.pipeline.show_token(index)
            self.window.inspector_dock.show()

    @Slot(int)
    def _inspector_clicked(self, index: int) -> None:
        if self._inspected is not None:
            self._inspected.widget.body.select_span(index)
            self.window.inspector.show_step(index)
            self.window.pipeline.show_token(index)

    @Slot(str)
    def _pipeline_link(self, target: str) -> None:
        """A Pipeline view link: "inspector" raises the token inspector; "tokens" / "prompt"
        show the inspected reply's user message as its tokens / as the whole prompt."""
        if target == "inspector":
            self.window.inspector_dock.show()
            self.window.inspector_dock.raise_()
            return
        user = self._user_before(self._inspected) if self._inspected is not None else None
        if user is not None and user.widget.mode_buttons[target].isEnabled():
            user.widget.mode_buttons[target].click()  # as if clicked: the same slot shows it
            self.window.chat.scroll.ensureWidgetVisible(user.widget)

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
                turn.widget.show_pieces(pieces, "tokens", plural(len(pieces), "token"))
            elif turn.prompt is not None:
                text = turn.prompt.prompt_text
                # the ids as sent, BOS included (B1); a message's special text is text (I1)
                pieces = display_pieces(text, self.model.prompt_tokens(turn.prompt))
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
                    f"{c.model} · {plural(c.message_count, 'message')} · "
                    f"{c.updated_at:%Y-%m-%d %H:%M}",
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
        self._show_context_of_chat()
        self.refresh_conversations()

    def _add_stored_reply(self, message: Any) -> None:
        widget = AssistantMessageWidget(message.model or "")
        turn = Turn("assistant", widget, message_id=message.id, prompt=message.prompt)
        turn.phases = list(message.phases)
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
        if conv_id == self.conversation_id:
            self.new_chat()
        for run in self._ending:
            if run.conv_id == conv_id:
                run.conv_id = None  # nothing to save a stopped reply into any more
        self._history(lambda: self.history.delete_conversation(conv_id))
        self.refresh_conversations()

    # ---- lifetime ----------------------------------------------------------------------------
    def _abandon_run(self, wait_ms: int = 300) -> None:
        """Stops the running reply and lets the screen move on. The run keeps its thread and
        signals until the thread ends (never dropped early) and saves its partial reply to its
        own chat; a short wait lets a quick stop end here, a long prefill ends later."""
        run = self.run
        if run is None:
            return
        run.worker.cancel()
        run.abandoned = True
        self.run = None
        self._ending.append(run)
        if run.thread is not None and run.thread.wait(wait_ms):
            QCoreApplication.sendPostedEvents(run)  # its done + thread-finished, saved now
        self.window.chat.set_busy(self.busy)
        if self._ending:
            self.window.chat.show_stopping()

    def may_close(self) -> bool:
        """The window's close guard: closes now when nothing runs; else stops the reply (and
        waits for a model load), shows that it is closing and closes when they have ended. A
        thread is never left running under a window being destroyed."""
        if self.run is None and not self._ending and not self._loaders:
            return True
        self._close_pending = True
        self.stop()
        for run in self._ending:
            run.worker.cancel()
        self.window.chat.input.setEnabled(False)
        self.window.statusBar().showMessage("Closing: waiting for the model to stop…")
        return False

    def _finish_close_if_idle(self) -> None:
        if self._close_pending and self.run is None and not self._ending and not self._loaders:
            self._close_pending = False
            QTimer.singleShot(0, self.window.close)

    @Slot()
    def shutdown(self) -> None:
        """The window closes: stop any reply and wait for its thread (its partial reply is saved),
        wait for a model load, save settings, close the model."""
        runs = [r for r in (self.run, *self._ending) if r is not None]
        for run in runs:
            run.worker.cancel()
        for run in runs:
            if run.thread is not None:
                run.thread.wait()  # cancel is checked between steps and prefill chunks
            QCoreApplication.sendPostedEvents(run)  # deliver its done: the reply is saved
        for _worker, thread in list(self._loaders):
            thread.wait()
        self.run = None
        self._ending.clear()
        self.window.chat.set_busy(False)
        if self._save_timer.isActive():
            self._save_timer.stop()
            self._save_settings()
        if self.model is not None:
            self.model.close()
            self.model = None


def plural(count: int, noun: str) -> str:
    """ "1 message", "2 messages"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


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


def model_label(info: Any) -> str:
    """The Model box's text for a catalog ModelInfo: its own title when it has one (e.g. "Dates to
    ISO 8601 (T5, trained here)"), else "folder name · precision"."""
    title = getattr(info, "title", "") or info.name
    return title if title != info.name else f"{info.name} · {info.precision}"
