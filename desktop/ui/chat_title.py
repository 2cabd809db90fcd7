"""A chat's title follows its first message: a chat named after its first message (as it is on
creation, `history.default_title`) is renamed after the version of that message now on screen,
when an edit or a switch of version changes it. A title the person chose (renamed) is kept.

Qt-free: reads the conversation tree (desktop/conversation.py), knows no storage.
"""

from __future__ import annotations

from desktop.conversation import Conversation, Node
from desktop.history import default_title


def followed_title(conversation: Conversation, shown: Node) -> str | None:
    """The title `conversation` should now have, `shown` having become the active version of a
    message; None to keep the title (`shown` is not a first message, the title is already right,
    or it is not named after any version of the first message: the person renamed it)."""
    if shown.role != "user" or shown.parent is not conversation.root:
        return None
    title = conversation.title
    wanted = default_title(shown.text)
    if title is None or _same(title, wanted):
        return None
    named_after = (default_title(v.text) for v in shown.siblings if v.role == "user")
    return wanted if any(_same(title, name) for name in named_after) else None


def _same(a: str, b: str) -> bool:
    """Equal as the history stores titles (runs of white space as one space)."""
    return " ".join(a.split()) == " ".join(b.split())
