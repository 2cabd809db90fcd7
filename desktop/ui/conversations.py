"""The conversation list (left dock): search, new chat, open, rename, delete with confirmation.
In the search box, Enter opens the first chat found, Down goes to the list of chats found and Esc
clears the search.

A view: the controller fills it with `(id, title, subtitle, tooltip)` rows and reacts to its
signals. Signals: open_requested(int), rename_requested(int, str), delete_requested(int),
search_changed(str), new_requested, export_requested(int, "md" | "json"), copy_requested(int)
(the last two from the chat's menu, chat_menu.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.chat_menu import chat_menu

RENAME_WIDTH = 440  # px: about 60 characters of a chat title
TITLE_ROLE = Qt.ItemDataRole.UserRole + 1  # a row's chat title (its tooltip says more)


class ConversationList(QWidget):
    open_requested = Signal(int)
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    search_changed = Signal(str)
    new_requested = Signal()
    export_requested = Signal(int, str)
    copy_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("conversations")
        self.new_button = QPushButton("New chat")
        self.new_button.setObjectName("newChat")
        self.new_button.clicked.connect(self.new_requested)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search chats")
        self.search.textChanged.connect(self.search_changed)
        self.search.returnPressed.connect(self._open_first)  # Enter opens the first chat found
        self.search.installEventFilter(self)  # Down goes to the chats found
        self.items = QListWidget()
        self.items.setAccessibleName("Conversations")
        self.items.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.items.setWordWrap(True)
        self.items.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.items.customContextMenuRequested.connect(self._menu)
        self.items.itemActivated.connect(self._activated)
        self.items.itemClicked.connect(self._activated)
        self.notice = None
        self.no_match = QLabel()  # shown when a search finds nothing (an empty list says nothing)
        self.no_match.setObjectName("muted")
        self.no_match.setWordWrap(True)
        self.no_match.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.no_match)
        layout.addWidget(self.items, 1)

    def set_rows(self, rows: Sequence[tuple[int, str, str, str]], current: int | None) -> None:
        self.items.blockSignals(True)
        self.items.clear()
        for conv_id, title, subtitle, tooltip in rows:
            item = QListWidgetItem(f"{title}\n{subtitle}")
            item.setData(Qt.ItemDataRole.UserRole, conv_id)
            item.setData(TITLE_ROLE, title)
            item.setToolTip(tooltip)
            self.items.addItem(item)
            if conv_id == current:
                item.setSelected(True)
                self.items.setCurrentItem(item)
        self.items.blockSignals(False)
        query = self.search.text().strip()
        self.no_match.setText(f"Nothing matches “{query}”.")
        self.no_match.setVisible(not rows and bool(query))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.search
            and event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress)
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
            and self.search.text()
        ):
            # Esc clears a search (as in a browser's find bar) before it is the window's Stop:
            # taking the shortcut override keeps the key here.
            event.accept()
            if event.type() == QEvent.Type.KeyPress:
                self.search.clear()
            return True
        if (
            watched is self.search
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Down
            and self.items.count()
        ):
            self.items.setFocus(Qt.FocusReason.TabFocusReason)
            self.items.setCurrentRow(0)
            return True
        return super().eventFilter(watched, event)

    def _open_first(self) -> None:
        if self.items.count():
            self._activated(self.items.item(0))

    def _activated(self, item: QListWidgetItem) -> None:
        self.open_requested.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def _menu(self, pos: QPoint) -> None:
        item = self.items.itemAt(pos)
        if item is None:
            return
        menu = chat_menu(self, int(item.data(Qt.ItemDataRole.UserRole)), item.data(TITLE_ROLE))
        menu.exec(self.items.mapToGlobal(pos))
        menu.deleteLater()

    def title_of(self, conv_id: int) -> str | None:
        """The title of chat `conv_id` as listed (None when it is not in the list)."""
        for row in range(self.items.count()):
            item = self.items.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == conv_id:
                return item.data(TITLE_ROLE)
        return None

    def rename_dialog(self, title: str) -> QInputDialog:
        """The rename dialog, wide enough to show a typical chat title whole (QInputDialog.getText
        sizes itself to its label, so long titles scrolled inside a narrow box)."""
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Rename chat")
        dialog.setLabelText("Title")
        dialog.setTextValue(title)
        dialog.resize(max(RENAME_WIDTH, dialog.sizeHint().width()), dialog.sizeHint().height())
        return dialog

    def ask_rename(self, conv_id: int, title: str) -> None:
        dialog = self.rename_dialog(title)
        if dialog.exec() and dialog.textValue().strip():
            self.rename_requested.emit(conv_id, dialog.textValue().strip())

    def ask_delete(self, conv_id: int, title: str) -> None:
        answer = QMessageBox.question(
            self,
            "Delete chat",
            f"Delete “{title}”? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_requested.emit(conv_id)
