"""The names and descriptions a screen reader gives the window's controls where the control's own
text or label does not say enough: a scrolling area (named after its panel), the message box and
Send (which keys they take), and each sampling setting (what the number does, in words; the
tooltips keep their short form). Set once when the window is built.

Views whose content changes say it themselves as it changes: a token view the selected token, the
alternatives chart its rows, the legend the scale (see spoken.py for the words).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QDockWidget, QScrollArea, QWidget

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow

SETTING_DESCRIPTIONS = {
    "temperature": "How random the choice of each token is: 0 always takes the most likely token, "
    "higher values spread the choice over more tokens.",
    "top_k": "Choose only among this many most likely tokens; 0 turns this off.",
    "top_p": "Choose only among the most likely tokens that together hold this share of the "
    "probability; 1 turns this off.",
    "min_p": "Leave out tokens less likely than this fraction of the most likely one; 0 turns "
    "this off.",
    "repetition_penalty": "Make tokens already in the chat less likely; 1 turns this off.",
    "seed": "The number the random choices start from, so a reply can be made again; random draws "
    "a new one for each reply.",
    "max_new_tokens": "The most tokens a reply may have.",
    "top_logprobs": "How many alternatives the inspector lists for each token.",
    "system_prompt": "Instructions the model reads before the chat.",
    "model": "The model that writes the replies.",
    "browse": "Open a model folder from your disk.",
    "reset": "Set the sampling settings back to the model's own defaults.",
    "provider": "Where the model runs: on the processor (CPU), or on a graphics card when this "
    "build of ONNX Runtime supports one.",
}


def describe(window: MainWindow) -> None:
    """Sets the names and descriptions (see the module docstring) on `window`'s controls."""
    chat = window.chat
    chat.input.setAccessibleDescription(
        "Type your message. Enter sends it, Shift+Enter starts a new line, Esc stops the reply."
    )
    chat.send_button.setAccessibleDescription("Send your message (Enter)")
    chat.scroll.setAccessibleName("Messages")
    chat.scroll.setAccessibleDescription(
        "The chat, first message to last. Tab goes through each message's buttons and tokens."
    )
    window.inspector.setAccessibleName("Token inspector")
    window.conversations.items.setAccessibleDescription(
        "Your saved chats. Enter opens the selected one."
    )
    for dock in window.findChildren(QDockWidget):
        title = dock.windowTitle()
        if dock.widget() is not None:
            _name_scroll_areas(dock.widget(), title)
        for button in dock.findChildren(
            QAbstractButton, options=Qt.FindChildOption.FindDirectChildrenOnly
        ):  # the title bar's close button ("Closes the dock widget", Qt's words)
            button.setAccessibleName(f"Close the {title} panel")
            button.setAccessibleDescription("The tool bar or its key opens it again.")
    for attribute, text in SETTING_DESCRIPTIONS.items():
        field = getattr(window.settings, attribute, None)
        if isinstance(field, QWidget):
            field.setAccessibleDescription(text)


def _name_scroll_areas(panel: QWidget, title: str) -> None:
    """A panel's scrolling areas are named after what they hold (the panel, or the named view
    inside), so Tab onto one says where the focus is."""
    for scroll in panel.findChildren(QScrollArea):
        if not scroll.accessibleName():
            inner = scroll.widget()
            scroll.setAccessibleName((inner.accessibleName() if inner else "") or title)
