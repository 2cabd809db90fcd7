"""A user message shown as text, as its tokens (ids on hover) or as the whole prompt the model
read: the behaviour behind the three buttons of a user bubble.

Owns nothing: it tokenizes with the model in use and hands the bubble what to draw. The prompt
of a message is the one its reply read (kept in the conversation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject

from desktop.conversation import Node
from desktop.engine.errors import EngineError
from desktop.ui.chat_list_controller import plural
from desktop.ui.feedback import Feedback
from desktop.ui.transcript import TranscriptController


@dataclass(frozen=True)
class DisplayPiece:
    """A token of a user message or prompt as the token view shows it."""

    id: int
    token: str
    bytes: bytes
    special: bool
    display: str


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


class TokenViewController(QObject):
    def __init__(
        self,
        transcript: TranscriptController,
        model: Callable[[], Any | None],
        feedback: Feedback,
    ) -> None:
        super().__init__(transcript)
        self.transcript = transcript
        self._model = model
        self.feedback = feedback
        transcript.user_shown.connect(self._user_shown)

    def _user_shown(self, node: Node, widget: Any) -> None:
        widget.view_mode_changed.connect(lambda mode, n=node, w=widget: self.show(n, w, mode))
        child = node.active_child
        widget.enable_prompt(child is not None and child.prompt is not None)

    def reveal(self, user: Node, mode: str) -> None:
        """Show `user` as "tokens" or "prompt" (the Pipeline view's links) as if its button had
        been clicked, and scroll to it; nothing when that view is not available."""
        widget = self.transcript.widget_of(user)
        if widget is not None and widget.mode_buttons[mode].isEnabled():
            widget.mode_buttons[mode].click()  # the same slot as a click shows it
            self.transcript.window.chat.scroll.ensureWidgetVisible(widget)

    def show(self, user: Node, widget: Any, mode: str) -> None:
        """Show `user` in `widget` as "text", "tokens" or "prompt"."""
        model = self._model()
        if mode == "text" or model is None:
            widget.show_text()
            return
        try:
            if mode == "tokens":
                pieces = display_pieces(user.text, model.tokenize(user.text))
                widget.show_pieces(pieces, "tokens", plural(len(pieces), "token"))
                return
            reply = user.active_child
            prompt = reply.prompt if reply is not None else None
            if prompt is None:
                return
            if reply.model is not None and reply.model != model.name:
                # its ids are that model's: another tokenizer would label them wrongly
                widget.show_text()
                self.feedback.status(
                    f"This reply was made by {reply.model}; load that model to see the prompt "
                    "it read as tokens."
                )
                return
            # the ids as sent, BOS included (B1); a message's special text is text (I1)
            pieces = display_pieces(prompt.prompt_text, model.prompt_tokens(prompt))
            dropped = prompt.dropped_messages
            note = f"The whole prompt: {len(prompt.prompt_ids)} tokens as sent to the model" + (
                f", {dropped} oldest messages left out" if dropped else ""
            )
            widget.show_pieces(pieces, "prompt", note)
        except EngineError as err:
            self.feedback.show_error(str(err))
