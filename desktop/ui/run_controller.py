"""The run: send, stop, regenerate, continue from a token, and streaming a reply into the
conversation through the chat service.

Owns the one reply being written for the window (and the stopped ones whose thread has not ended
yet). A run is a `RunRequest` submitted to the `ChatService` (one model, one generation at a
time, on the service's thread); a `RunWorker` iterates its handle on a QThread and signals each
record to a `_Run` on the GUI thread (cases G1-G4), which writes it into the `Conversation` the
run was started in. The bubbles follow the conversation (transcript.py); this module never draws.

Regenerate and "continue from here with this token" add a new version of a reply; the old one is
kept. A new version that ends before its first token is taken out again and the old one comes
back. A finished reply is saved on the service's thread by the `finish` that `saver` gives
(the chat list's), and its message id set here once the run's thread has ended. Signals:
run_started(conversation, reply), user_sent(conversation, user, model name),
reply_finished(conversation, reply) (once the run's thread has ended), user_refused(conversation,
user), reply_done(done or None) after it, idle() when nothing runs any more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from desktop.chat_service import ChatService, RunRequest
from desktop.conversation import ChatSettings, Conversation, Node
from desktop.engine.errors import EngineError
from desktop.engine.events import (
    GenerationDone,
    GenerationSettings,
    Message,
    Phase,
    PrefillProgress,
    PromptInfo,
    TokenStep,
)
from desktop.engine.tokenizer import well_formed
from desktop.ui.feedback import Feedback
from desktop.ui.main_window import MainWindow
from desktop.ui.model_controller import ModelController
from desktop.ui.store import refused
from desktop.ui.transcript import TranscriptController
from desktop.ui.worker import RunWorker, prepare_thread


def model_messages(conversation: Conversation, until: Node | None) -> list[Message]:
    """What the model reads for a reply placed under `until`: the chat's system prompt, then the
    active path's messages up to `until` that the model reads (`Conversation.messages`: one rule,
    desktop/conversation.py `model_reads`, for the window and the CLI)."""
    return conversation.messages(until if until is not None else conversation.root)


class _Run(QObject):
    """Receives one run's signals on the GUI thread (real slots on a GUI-thread QObject, cases
    G3, G4) and writes them into the conversation the run started in. After New chat or opening
    another chat it is `abandoned`: its records still go into its own conversation, which is
    still saved. `replaces`: the reply a new version was made of (Regenerate, a branch)."""

    def __init__(
        self,
        controller: RunController,
        conversation: Conversation,
        reply: Node,
        worker: RunWorker,
        replaces: Node | None,
    ) -> None:
        super().__init__(controller)
        self.controller = controller
        self.conversation = conversation
        self.reply = reply
        self.worker = worker
        self.replaces = replaces
        self.done: GenerationDone | None = None
        self.finished = False  # ended with a reply that stays (reply_finished at thread end)
        self.abandoned = False
        self.stopping = False
        self.thread: QThread | None = None

    @property
    def handle(self) -> Any:
        return self.worker.handle

    @Slot(object)
    def on_prompt(self, info: PromptInfo) -> None:
        self.conversation.set_prompt(self.reply, info)
        if self.stopping and not self.reply.steps:
            self.controller.show_stopping(self.reply)

    @Slot(object)
    def on_progress(self, progress: PrefillProgress) -> None:
        """How far the prefill got: the bubble's reading line says it (not once stopping)."""
        widget = self.controller.transcript.widget_of(self.reply)
        if widget is not None and not self.stopping and not self.reply.steps:
            widget.set_progress(progress.done, progress.total, progress.reused)

    @Slot(object)
    def on_phase(self, phase: Phase) -> None:
        self.conversation.add_phase(self.reply, phase)  # the Pipeline view reads reply.phases

    @Slot(object)
    def on_token(self, step: TokenStep) -> None:
        self.conversation.append_step(self.reply, step)

    @Slot(object)
    def on_done(self, done: GenerationDone) -> None:
        self.done = done
        self.controller.finish(self, done, None)

    @Slot(str)
    def on_failed(self, message: str) -> None:
        self.controller.finish(self, None, message)

    @Slot()
    def on_thread_finished(self) -> None:
        self.controller.run_ended(self)


class RunController(QObject):
    run_started = Signal(object, object)
    user_sent = Signal(object, object, str)
    reply_finished = Signal(object, object)
    user_refused = Signal(object, object)
    reply_done = Signal(object)
    idle = Signal()

    def __init__(
        self,
        window: MainWindow,
        service: ChatService,
        models: ModelController,
        transcript: TranscriptController,
        feedback: Feedback,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.service = service
        self.models = models
        self.transcript = transcript
        self.feedback = feedback
        self.run: _Run | None = None
        self.ending: list[_Run] = []  # abandoned runs whose thread has not ended yet
        self.take_edit: Callable[[], Node | None] = lambda: None  # set by the editing controller
        self.cancel_edit: Callable[[], None] = lambda: None
        self.sync_actions: Callable[[], None] = lambda: None  # set by app.py (actions_state)
        # (conversation, reply, replaces) -> a ChatService `finish` saving the reply, or None
        self.saver: Callable[[Conversation, Node, bool], Any] = lambda *_: None
        # conversation -> its ChatSettings, defaults filled in (set by the chat settings)
        self.settle: Callable[[Conversation], ChatSettings] = lambda c: c.settings
        chat = window.chat
        chat.send_button.clicked.connect(self._send_clicked)
        chat.input.submitted.connect(self._send_clicked)
        chat.stop_button.clicked.connect(self.stop)
        chat.input.stop_requested.connect(self.stop)
        window.stop_shortcut.connect(self.stop)
        chat.regenerate_button.clicked.connect(self._regenerate_clicked)
        transcript.reply_shown.connect(self._reply_shown)
        transcript.path_changed.connect(self.sync_buttons)
        models.model_ready.connect(self.sync_buttons)

    @property
    def busy(self) -> bool:
        """A reply is running, or a stopped one has not ended yet (one generation at a time)."""
        return self.run is not None or bool(self.ending)

    def _reply_shown(self, node: Node, widget: Any) -> None:
        widget.regenerate_requested.connect(lambda n=node: self.regenerate(n))
        widget.branch_requested.connect(lambda i, t, n=node: self.branch(n, i, t))
        widget.set_busy(node.done is None or self.busy)

    # ---- starting ----------------------------------------------------------------------------
    @Slot()
    def _send_clicked(self) -> None:
        self.send()

    @Slot()
    def _regenerate_clicked(self) -> None:
        self.regenerate()

    def send(self, text: str | None = None) -> bool:
        """Sends the input box's text (or `text`, leaving the box's draft alone); returns whether a
        reply was started. When `take_edit` hands over a message being edited, the text becomes
        a new version of it."""
        from_box = text is None
        text = self.window.chat.input.toPlainText() if text is None else text
        text = well_formed(text)  # a pasted lone surrogate: U+FFFD, not a failed save
        if not text.strip():
            return False
        if self.busy:
            self.feedback.status("Wait for the current reply to stop.")
            return False
        model = self.models.model
        if model is None:
            self.feedback.show_error("No model is loaded yet. Choose one in Settings.")
            return False
        editing = self.take_edit()
        if from_box:
            self.window.chat.input.clear()
        self.feedback.clear_read()
        conversation = self.transcript.conversation
        user = conversation.edit(editing, text) if editing else conversation.add_user(text)
        self.user_sent.emit(conversation, user, model.name)
        self._start(conversation, conversation.add_reply(user, model.name))
        return True

    def regenerate(self, reply: Node | None = None) -> None:
        """A new version of `reply` (default: the last reply on screen); the old one is kept."""
        if self.busy or self.models.model is None:
            return
        self.cancel_edit()  # regenerating means keeping the last message as it was
        rows = self.transcript.rows
        if reply is None:
            if not rows or rows[-1].node.role != "assistant":
                return
            reply = rows[-1].node
        conversation = self.transcript.conversation
        new = conversation.regenerate(reply, self.models.model.name)
        self._start(conversation, new, replaces=reply)

    def branch(self, reply: Node, index: int, token_id: int) -> bool:
        """Continue `reply` from its token `index` with `token_id` in its place, as a new
        version, sampling on with the reply's own settings (as `tokenglass branch` does; the
        panel's when the reply has none, e.g. one that failed before it finished); returns
        whether it started."""
        if self.busy or self.models.model is None:
            self.feedback.status("Wait for the current reply to finish.")
            return False
        loaded = self.models.model.name
        if reply.model is not None and reply.model != loaded:
            # token ids belong to one vocabulary (as `tokenglass branch` keeps the reply's model)
            self.feedback.show_error(
                f"This reply was made by {reply.model}, and {loaded} is loaded: load "
                f"{reply.model} to continue it from one of its tokens."
            )
            return False
        self.cancel_edit()
        conversation = self.transcript.conversation
        try:
            new, forced = conversation.branch(reply, index, token_id, loaded)
        except (IndexError, ValueError) as err:
            self.feedback.status(str(err))
            return False
        settings = reply.done.settings if reply.done is not None else None
        self._start(conversation, new, forced, replaces=reply, settings=settings)
        return True

    def _start(
        self,
        conversation: Conversation,
        reply: Node,
        forced: tuple[int, ...] = (),
        replaces: Node | None = None,
        settings: GenerationSettings | None = None,
    ) -> None:
        """Runs `reply` (a new node of `conversation`) on the service with the chat's system
        prompt; `settings`: the sampling settings, the chat's own when None."""
        chat = self.settle(conversation)
        messages = model_messages(conversation, reply.parent)
        if settings is None:
            settings = chat.generation or GenerationSettings()  # None only with no model
        request = RunRequest(tuple(messages), settings, forced, label="window")
        try:
            handle = self.service.submit(request, self.saver(conversation, reply, bool(replaces)))
        except EngineError as err:  # no model, the service closing, a full queue
            conversation.remove(reply)
            if replaces is not None:
                conversation.activate(replaces)
            self.feedback.show_error(str(err))
            return
        worker = RunWorker(handle)
        run = _Run(self, conversation, reply, worker, replaces)
        worker.prompt_ready.connect(run.on_prompt)
        worker.progress.connect(run.on_progress)
        worker.phase.connect(run.on_phase)
        worker.token.connect(run.on_token)
        worker.done.connect(run.on_done)
        worker.failed.connect(run.on_failed)
        self.run = run
        self.window.chat.set_busy(True)
        self.sync_buttons()
        self.run_started.emit(conversation, reply)
        # Connected before start: a worker that ends at once would otherwise finish unseen and
        # reply_done would never come (the flaky test_sampler_error_is_shown_and_chat_goes_on).
        run.thread = prepare_thread(worker, self)
        run.thread.finished.connect(run.on_thread_finished)
        run.thread.start()

    # ---- ending ------------------------------------------------------------------------------
    def finish(self, run: _Run, done: GenerationDone | None, refusal: str | None) -> None:
        """The run's last record (`done`), or the engine's refusal before it (`refusal`)."""
        conversation, reply = run.conversation, run.reply
        if run.replaces is not None and not reply.steps:
            conversation.remove(reply)  # a new version with no token: the old one comes back
            conversation.activate(run.replaces)
            message = refusal or (done.error if done is not None else None)
            if run.abandoned:
                return
            if message:
                self.feedback.show_error(message)
            else:
                self.feedback.status(
                    "Stopped before the first token; the previous reply is kept.", 8000
                )
            return
        if done is None:
            done = GenerationDone(
                finish_reason="error",
                text="",
                prompt_tokens=0,
                completion_tokens=0,
                ttft_ms=0.0,
                decode_tokens_per_s=0.0,
                provider="",
                seed=0,
                error=refusal,
                settings=run.handle.request.settings,
            )
        conversation.finish(reply, done)
        if reply.parent is not None and refused(reply.parent):
            self.user_refused.emit(conversation, reply.parent)
        else:
            run.finished = True
        if done.error and not run.abandoned:
            self.feedback.report(done.error)

    def run_ended(self, run: _Run) -> None:
        """The worker's thread ended (the service's `finish` too): the reply has its message id,
        and the window is ready for the next message."""
        if run.finished:
            saved = run.handle.finish_value  # the service thread saved it: its message id
            if saved is not None and run.reply.message_id is None:
                run.reply.message_id = saved
            self.reply_finished.emit(run.conversation, run.reply)  # saves it when that could not
        if run in self.ending:
            self.ending.remove(run)
        if self.run is run:
            self.run = None
        self.window.chat.set_busy(self.busy)
        self.sync_buttons()
        for row in self.transcript.rows:
            if row.node.role == "assistant" and row.node.done is not None:
                row.widget.set_busy(self.busy)
        if not run.abandoned:
            self.reply_done.emit(run.done)
        if run.thread is not None:
            run.thread.deleteLater()
        run.deleteLater()
        if not self.busy:
            self.idle.emit()

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
        if not run.reply.steps:
            self.show_stopping(run.reply)
        self.feedback.status("Stopping…", 0, kind="stopping")  # until idle (app.py: end_on)

    def show_stopping(self, reply: Node) -> None:
        widget = self.transcript.widget_of(reply)
        if widget is not None:
            widget.reading.setText("Stopping…")

    def abandon(self, wait_ms: int = 300) -> None:
        """Stops the running reply and lets the screen move on (New chat, another chat). The run
        keeps its thread and signals until the thread ends and writes its partial reply into its
        own conversation (saved); a short wait lets a quick stop end here."""
        run = self.run
        if run is None:
            return
        run.worker.cancel()
        run.abandoned = True
        self.run = None
        self.ending.append(run)
        if run.thread is not None and run.thread.wait(wait_ms):
            QCoreApplication.sendPostedEvents(run)  # its done + thread-finished, saved now
        self.window.chat.set_busy(self.busy)
        if self.ending:
            self.window.chat.show_stopping()

    def cancel_all(self) -> None:
        for run in [r for r in (self.run, *self.ending) if r is not None]:
            run.worker.cancel()

    def wait_all(self) -> None:
        """The window closes: wait for every run's thread (cancel is checked between steps and
        prefill chunks) and deliver its last records, so its reply is saved."""
        runs = [r for r in (self.run, *self.ending) if r is not None]
        for run in runs:
            run.worker.cancel()
        for run in runs:
            if run.thread is not None:
                run.thread.wait()
            QCoreApplication.sendPostedEvents(run)
        self.run = None
        self.ending.clear()
        self.window.chat.set_busy(False)

    def sync_buttons(self, *_args: Any) -> None:
        """Regenerate, Edit last and Copy last reply follow the run (actions_state.py decides
        them all, through `sync_actions`)."""
        self.sync_actions()
