"""A saved chat's menu in the chat list (right-click): Rename…, Delete…, Export as Markdown…,
Export as JSON…, Copy conversation; and the chat's tooltip (title, id, start, model).

`chat_menu` builds the menu (a view helper: its actions call the list's dialogs or emit the list's
`export_requested(id, "md" | "json")` / `copy_requested(id)`). `ChatMenuController` answers
those: a save dialog, then the file written with the text `tokenglass export ID --format md|json`
writes (`ChatStore.export`, one export for the CLI and the window), or that Markdown on the
clipboard. A storage or file error becomes a message in the window; nothing else changes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QStandardPaths, Slot
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QWidget

from desktop.engine.errors import EngineError

if TYPE_CHECKING:  # the chat list (a part of the main window) imports this module's menu
    from desktop.ui.feedback import Feedback
    from desktop.ui.main_window import MainWindow
    from desktop.ui.store import ChatStore

FORMATS = {
    "md": ("Markdown", "Markdown (*.md)", "md"),
    "json": ("JSON", "JSON (*.json)", "json"),
}
"""format -> (its name in the menu, the save dialog's filter, the file's suffix)."""


def chat_tooltip(summary: Any) -> str:
    """The chat list row's tooltip for a `ConversationSummary`: its title, then "Chat 12 ·
    started 2026-11-30 20:01 · SmolLM2-135M-Instruct" (local time; the id is what `tokenglass
    export ID` takes)."""
    started = summary.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    return f"{summary.title}\nChat {summary.id} · started {started} · {summary.model}"


def chat_menu(chats: Any, conv_id: int, title: str, parent: QWidget | None = None) -> QMenu:
    """The menu of chat `conv_id` in the chat list `chats` (a `ConversationList`)."""
    menu = QMenu(parent or chats)
    menu.addAction("Rename…").triggered.connect(lambda: chats.ask_rename(conv_id, title))
    menu.addAction("Delete…").triggered.connect(lambda: chats.ask_delete(conv_id, title))
    menu.addSeparator()
    for fmt, (name, _filter, _suffix) in FORMATS.items():
        action = menu.addAction(f"Export as {name}…")
        action.triggered.connect(lambda _c=False, f=fmt: chats.export_requested.emit(conv_id, f))
    copy = menu.addAction("Copy conversation")
    copy.setToolTip("Copy the whole chat as Markdown")
    copy.triggered.connect(lambda: chats.copy_requested.emit(conv_id))
    return menu


def file_name(title: str, suffix: str) -> str:
    """A file name for a chat titled `title`: characters that no file system takes and the "…"
    of a cut title out, at most 60 characters before the suffix ("chat" when nothing is left)."""
    stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", title.rstrip("…"))  # a cut title's "…" goes
    stem = " ".join(stem.split()).strip(" .")[:60].rstrip(" .")
    return f"{stem or 'chat'}.{suffix}"


def export_folder() -> str:
    """Where a first export is offered: the Documents folder when it exists, else the home
    folder (a save dialog handed a folder that does not exist opens in the working directory,
    which for a packaged app is "/" or the app's own folder)."""
    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return documents if documents and Path(documents).is_dir() else str(Path.home())


class ChatMenuController(QObject):
    """Export and copy of a saved chat (see the module docstring). `dialog`: the save dialog
    while it is open (non-modal to the code: `open`, answered by its fileSelected)."""

    def __init__(self, window: MainWindow, store: ChatStore | None, feedback: Feedback) -> None:
        super().__init__(window)
        self.window = window
        self.store = store
        self.feedback = feedback
        self.dialog: QFileDialog | None = None
        self._folder: str | None = None  # the last export's folder (this session)
        window.conversations.export_requested.connect(self.ask_export)
        window.conversations.copy_requested.connect(self.copy_conversation)

    def _text(self, conv_id: int, fmt: str) -> str | None:
        """The export of chat `conv_id`, or None (the error shown)."""
        if self.store is None:
            self.feedback.show_error("Chats are not being saved, so there is nothing to export.")
            return None
        try:
            return self.store.export(conv_id, fmt)
        except EngineError as err:
            self.feedback.show_error(str(err))
            return None

    @Slot(int, str)
    def ask_export(self, conv_id: int, fmt: str) -> None:
        """A save dialog for chat `conv_id` as `fmt` ("md" | "json"); the file is written once a
        name is chosen."""
        name, name_filter, suffix = FORMATS[fmt]
        dialog = QFileDialog(self.window, f"Export chat as {name}")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setNameFilter(name_filter)
        dialog.setDefaultSuffix(suffix)
        dialog.setDirectory(self._folder or export_folder())
        title = self.window.conversations.title_of(conv_id) or f"chat {conv_id}"
        dialog.selectFile(file_name(title, suffix))
        dialog.fileSelected.connect(lambda path: self.export_to(conv_id, fmt, Path(path)))
        dialog.finished.connect(lambda _result: self._closed(dialog))
        self.dialog = dialog
        dialog.open()

    def _closed(self, dialog: QFileDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def export_to(self, conv_id: int, fmt: str, path: Path) -> bool:
        """Writes chat `conv_id` as `fmt` to `path` (UTF-8); returns whether it was written."""
        text = self._text(conv_id, fmt)
        if text is None:
            return False
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            self.feedback.show_error(f"Could not write {path}: {err.strerror or err}.")
            return False
        self._folder = str(path.parent)
        self.feedback.status(f"Exported the chat to {path}.", 8000)
        return True

    @Slot(int)
    def copy_conversation(self, conv_id: int) -> None:
        """Chat `conv_id` as Markdown (the export's text) on the clipboard."""
        text = self._text(conv_id, "md")
        if text is not None:
            QApplication.clipboard().setText(text)
            self.feedback.status("Copied the chat as Markdown.", 4000)
