"""Opening a saved chat whose replies were made by another model than the one loaded: a notice
says so, names that model and offers to load it (a link in the notice) when it is installed; new
replies otherwise come from the loaded model. The notice goes once a model loads (or, as every
notice, when the next message is sent).

Knows the session (which chat is shown), the model controller (what is loaded, what is
installed, `open_model`) and the feedback (the notice); nothing about storage.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Qt, Slot

from desktop.conversation import Conversation
from desktop.engine.errors import EngineError

SWITCH_LINK = "load-model"


def made_with(conversation: Conversation) -> str | None:
    """The model that wrote the last reply on the chat's active path (None: no reply yet)."""
    replies = [n for n in conversation.path() if n.role == "assistant" and n.model]
    return replies[-1].model if replies else None


def notice_text(chat_model: str, loaded: str, installed: bool) -> tuple[str, str]:
    """The notice for a chat made with `chat_model` while `loaded` is loaded: (plain text for
    the status bar, rich text for the chat column, with a link that loads `chat_model` when it
    is `installed`)."""
    plain = (
        f"This chat was made with {chat_model}; {loaded} is loaded, so new replies come from "
        f"{loaded}."
    )
    rich = html.escape(plain)
    if installed:
        link = f'<a href="{SWITCH_LINK}">Load {html.escape(chat_model)}</a>'
        return plain, f"{rich} {link}"
    missing = f" {chat_model} is not installed here (Settings → Open folder… opens a folder)."
    return plain + missing, rich + html.escape(missing)


class ModelNotice(QObject):
    def __init__(
        self,
        window: Any,
        session: Any,
        models: Any,
        feedback: Any,
        list_models: Callable[[], Sequence[Any]] | None,
    ) -> None:
        super().__init__(window)
        self.models = models
        self._list_models = list_models
        self.feedback = feedback
        self.notice: Any | None = None  # the notice on screen, if any
        session.replaced.connect(self._shown)
        models.model_ready.connect(self._dismiss)

    @Slot(object)
    def _shown(self, conversation: Conversation) -> None:
        self.notice = None  # a notice of the chat before went with its column
        model, chat_model = self.models.model, made_with(conversation)
        if model is None or chat_model is None or chat_model == model.name:
            return
        plain, rich = notice_text(chat_model, model.name, chat_model in self._installed())
        notice = self.feedback.show_notice(plain)
        notice.setTextFormat(Qt.TextFormat.RichText)
        notice.setText(rich)
        notice.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.LinksAccessibleByMouse
            | Qt.TextInteractionFlag.LinksAccessibleByKeyboard
        )
        notice.linkActivated.connect(lambda _link, name=chat_model: self.models.open_model(name))
        self.notice = notice

    def _installed(self) -> set[str]:
        """The names of the installed models (none when they cannot be listed)."""
        if self._list_models is None:
            return set()
        try:
            return {m.name for m in self._list_models()}
        except EngineError:  # the model box says why; the notice then offers no link
            return set()

    @Slot(object)
    def _dismiss(self, _model: Any) -> None:
        notice, self.notice = self.notice, None
        if notice is not None and shiboken6.isValid(notice):
            self.feedback.dismiss(notice)
