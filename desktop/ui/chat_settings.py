"""Per-chat settings in the window: the Settings panel's sampling fields and system prompt are the
chat on screen's own `ChatSettings` (desktop/conversation.py), as LM Studio's per-chat settings.

Owns: which settings the panel shows (the conversation's; a new chat's are the defaults for new
chats), writing a change in the panel into the conversation (and saving it in history, a moment
later so typing is one write), "Reset to defaults" (the chat takes the defaults), "Use as default
for new chats" (the defaults take the chat's), filling in what a chat saved before history
migration m004 did not record (the defaults, as its next turn used until then; saved at once),
and the note under the system prompt box when the box is empty and the model's chat template
inserts a system prompt of its own (ChatModel.template_system_prompt).
The defaults for new chats are the window's saved settings (settings_store.AppSettings: the
system prompt, and the sampling settings per model laid over its generation_config.json).

Knows the panel, the session, the model controller's model and saved settings, and the store.
Does not know how a run is made (desktop/ui/run_controller.py asks `settle` for a conversation's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Slot

from desktop.conversation import ChatSettings, Conversation, Node
from desktop.engine.errors import EngineError
from desktop.ui.feedback import Feedback
from desktop.ui.main_window import MainWindow
from desktop.ui.model_controller import ModelController
from desktop.ui.session import ChatSession
from desktop.ui.store import ChatStore

NOTE_QUOTE_CHARS = 60  # how much of a template's own system prompt the note quotes
SAVE_DELAY_MS = 400  # typing in the box is saved once, this long after the last key


def template_note(model: Any, system_prompt: str) -> str | None:
    """The line under an empty system prompt box when `model`'s chat template inserts its own
    system prompt (quoting its start: at most NOTE_QUOTE_CHARS characters, cut after a word),
    else None."""
    default = getattr(model, "template_system_prompt", None)
    if system_prompt.strip() or not default:
        return None
    quote = default
    if len(default) > NOTE_QUOTE_CHARS:  # cut at a word's end
        quote = default[: NOTE_QUOTE_CHARS + 1].rsplit(maxsplit=1)[0].rstrip(",;:") + "…"
    return f"Left empty, {model.name}'s chat template adds its own: “{quote}”"


class ChatSettingsController(QObject):
    def __init__(
        self,
        window: MainWindow,
        session: ChatSession,
        models: ModelController,
        store: ChatStore | None,
        feedback: Feedback,
    ) -> None:
        super().__init__(window)
        self.panel = window.settings
        self.session = session
        self.models = models
        self.store = store
        self.feedback = feedback
        self._pending: list[Conversation] = []  # changed, to be saved when the timer fires
        self._showing = False  # the panel is being filled from the conversation
        self._unsubscribe: Callable[[], None] | None = None
        self.save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self.save_timer.timeout.connect(self.flush)
        self.panel.generation_changed.connect(self._panel_changed)
        self.panel.reset_requested.connect(self.reset_to_defaults)
        self.panel.default_requested.connect(self.use_as_default)
        session.replaced.connect(self._replaced)
        models.model_ready.connect(self._model_ready)
        window.closing.connect(self.flush)
        self._watch(session.conversation)

    @property
    def conversation(self) -> Conversation:
        return self.session.conversation

    # ---- the defaults ------------------------------------------------------------------------
    def defaults(self) -> ChatSettings | None:
        """What a new chat starts with for the model in use (None: no model loaded yet)."""
        model = self.models.model
        if model is None:
            return None
        saved = self.models.app_settings
        return ChatSettings(
            saved.system_prompt, saved.generation_for(model.name, model.default_settings())
        )

    def settle(self, conversation: Conversation) -> ChatSettings:
        """`conversation`'s settings with any part not recorded taken from the defaults (set on
        it and saved); the run controller asks for them before each run."""
        defaults = self.defaults()
        if defaults is not None and not conversation.settings.complete:
            conversation.set_settings(conversation.settings.with_defaults(defaults))
        return conversation.settings

    @Slot()
    def use_as_default(self) -> None:
        """New chats start with the chat on screen's settings (saved with the window's)."""
        model, chat = self.models.model, self.settle(self.conversation)
        if model is None or chat.generation is None:
            self.feedback.status("Load a model first: its settings are the starting point.")
            return
        saved = self.models.app_settings
        saved.system_prompt = chat.system_prompt or ""
        saved.remember(model.name, chat.generation)
        self.models.save_timer.start()
        self._show_source()
        self.feedback.status("New chats will start with these settings.")

    @Slot()
    def reset_to_defaults(self) -> None:
        """The chat on screen takes the settings new chats start with."""
        defaults = self.defaults()
        if defaults is not None:
            self.conversation.set_settings(defaults)
            self._show()  # also when nothing changed (fields typed but equal again)

    # ---- following the conversation and the model --------------------------------------------
    def _watch(self, conversation: Conversation) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = conversation.subscribe(
            lambda change, node, c=conversation: self._changed(c, change, node)
        )

    @Slot(object)
    def _replaced(self, conversation: Conversation) -> None:
        self.flush()  # the chat left behind keeps what was typed into it
        self._watch(conversation)
        self._start_from_defaults_if_new(conversation)
        self.settle(conversation)
        self._show()

    @Slot(object)
    def _model_ready(self, _model: Any) -> None:
        self._start_from_defaults_if_new(self.conversation)
        self.settle(self.conversation)
        self._show()

    def _start_from_defaults_if_new(self, conversation: Conversation) -> None:
        """A chat with no message yet (New chat, or the first model loaded) starts from the
        defaults for the model in use."""
        defaults = self.defaults()
        if defaults is not None and conversation.id is None and not conversation.path():
            conversation.set_settings(defaults)

    def _changed(self, conversation: Conversation, change: str, _node: Node) -> None:
        if change != "settings":
            return
        if conversation not in self._pending:
            self._pending.append(conversation)
        self.save_timer.start()
        if conversation is self.conversation and not self._showing:
            self._show()

    @Slot()
    def _panel_changed(self) -> None:
        if self._showing:
            return
        chat = ChatSettings(self.panel.system_prompt_text(), self.panel.generation())
        self._showing = True  # the panel already shows it: no refill while typing
        try:
            self.conversation.set_settings(chat)
        finally:
            self._showing = False
        self._show_note()
        self._show_source()

    @Slot()
    def flush(self) -> None:
        """Save the settings changed since the last save (each saved chat's own row)."""
        self.save_timer.stop()
        pending, self._pending = self._pending, []
        store = self.store
        if store is None:
            return
        for conversation in pending:
            if conversation.id is None:
                continue  # saved with the chat when its first message is
            try:
                store.save_settings(conversation)
            except EngineError as err:  # e.g. the chat was deleted meanwhile
                self.feedback.status(str(err), 8000)

    # ---- the panel ---------------------------------------------------------------------------
    def _show(self) -> None:
        """Fill the panel with the chat on screen's settings (untouched fields for a part not
        recorded while no model is loaded)."""
        chat = self.conversation.settings
        self._showing = True
        try:
            generation = chat.generation
            if generation is None:
                generation = self.panel.generation()
            self.panel.set_generation(generation, chat.system_prompt or "", "")
        finally:
            self._showing = False
        self._show_note()
        self._show_source()

    def _show_note(self) -> None:
        note = template_note(self.models.model, self.panel.system_prompt_text())
        self.panel.template_note.setText(note or "")
        self.panel.template_note.setVisible(note is not None)

    def _show_source(self) -> None:
        """Under the buttons: whether this chat's settings are the defaults for new chats."""
        model, defaults = self.models.model, self.defaults()
        if model is None or defaults is None:
            self.panel.source.setText("")
        elif self.conversation.settings == defaults:
            self.panel.source.setText("Same as the defaults for new chats.")
        else:
            self.panel.source.setText("Differs from the defaults for new chats.")
