"""The window's keyboard shortcuts: one table (`SHORTCUTS`) that both binds the keys and lists them
(Help > Keyboard shortcuts, F1), so the list cannot drift from the bindings.

The keys follow the best chat apps where they have one (ChatGPT: Ctrl+K search chats, Shift+Esc
focus the message box, Ctrl+Shift+C copy the last reply) and avoid keys a text box already uses
(Ctrl+E and Ctrl+K-like emacs keys are taken by Qt's text fields on Linux, so Edit is
Ctrl+Shift+E). Qt writes "Ctrl" as ⌘ on macOS. `CONTROL_KEYS` lists the keys that one control
handles itself (Enter in the message box, arrows in a reply); they are listed, not bound, here.

Each shortcut runs what its button or action runs (a disabled button stays disabled: the key then
says so in the status bar). Knows the window's widgets, not the controllers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QHeaderView,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.focus_order import first_stop

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow


@dataclass(frozen=True)
class Shortcut:
    """One window-wide binding. name: its handler (see `_handlers`); text: the action's name;
    keys: Qt's portable key text ("Ctrl+Shift+C"), the first one shown in tooltips;
    description: what it does, in the list and as the action's tooltip."""

    name: str
    text: str
    keys: tuple[str, ...]
    description: str


PANELS = (  # (MainWindow attribute, its title, key): the side panels, in the order of their keys
    ("chats_dock", "Chats", "Ctrl+1"),
    ("settings_dock", "Settings", "Ctrl+2"),
    ("inspector_dock", "Token inspector", "Ctrl+3"),
    ("pipeline_dock", "Pipeline", "Ctrl+4"),
    ("attention_dock", "Attention", "Ctrl+5"),
    ("layers_dock", "Layers", "Ctrl+6"),
)

SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("new_chat", "New chat", ("Ctrl+N",), "Start a new chat"),
    Shortcut("stop", "Stop", ("Esc",), "Stop the reply being written; what it wrote is kept"),
    Shortcut(
        "regenerate",
        "Regenerate",
        ("Ctrl+R",),
        "Write the last reply again; the old one is kept as a version",
    ),
    Shortcut(
        "edit_last",
        "Edit last message",
        ("Ctrl+Shift+E",),
        "Edit your last message in its bubble and send it as a new version",
    ),
    Shortcut("copy_reply", "Copy last reply", ("Ctrl+Shift+C",), "Copy the last reply's text"),
    Shortcut("search", "Search chats", ("Ctrl+K",), "Go to the search box of the Chats panel"),
    Shortcut("focus_input", "Focus the message box", ("Shift+Esc",), "Go to the message box"),
    *(
        Shortcut(f"panel:{attr}", title, (key,), f"Show the {title} panel")
        for attr, title, key in PANELS
    ),
    Shortcut("help", "Keyboard shortcuts", ("F1",), "Show this list of keys"),
    Shortcut("quit", "Quit", ("Ctrl+Q",), "Close Tokenglass; a reply being written is stopped"),
)

CONTROL_KEYS: tuple[tuple[str, str], ...] = (
    ("Enter", "In the message box: send the message"),
    ("Shift+Enter", "In the message box: start a new line"),
    ("Enter, Esc", "In a message being edited: send the edit as a new version, or cancel it"),
    ("Tab, Shift+Tab", "Go to the next or the previous control"),
    ("Down, Enter", "In the chat search box: go to the chats found, or open the first one"),
    ("Esc", "In the chat search box: clear the search"),
    ("Left, Right, Home, End", "In a message or reply: move between its tokens"),
    ("Alt+Left, Alt+Right", "In a message or reply: show its previous or next version"),
    ("Up, Down, Enter", "In the top alternatives: continue the reply from the chosen token"),
    ("Left, Right", "On a panel tab bar: switch the panel"),
)


def key_text(keys: tuple[str, ...]) -> str:
    """Keys as this platform writes them ("Ctrl+Shift+C"; "⇧⌘C" on macOS), "or" between."""
    native = QKeySequence.SequenceFormat.NativeText
    return " or ".join(QKeySequence(key).toString(native) for key in keys)


def with_key(name: str, text: str) -> str:
    """`text` followed by the key of the table's entry `name`: "Copy ... (Ctrl+Shift+C)"."""
    shortcut = next(s for s in SHORTCUTS if s.name == name)
    return f"{text} ({key_text(shortcut.keys)})"


def install(window: MainWindow) -> dict[str, QAction]:
    """Binds every shortcut of the table in `window` (window-wide), adds Help > Keyboard
    shortcuts, and returns the actions by name. Existing actions (New chat, Copy last reply,
    Quit) get their keys from the table. Raises KeyError when the table names a handler that
    does not exist (a test builds the window, so a mismatch fails there)."""
    handlers = _handlers(window)
    actions: dict[str, QAction] = {}
    for shortcut in SHORTCUTS:
        target = handlers[shortcut.name]
        if isinstance(target, QAction):
            action = target
        else:
            action = QAction(shortcut.text, window)
            action.triggered.connect(lambda _checked=False, run=target: run())
        action.setShortcuts([QKeySequence(key) for key in shortcut.keys])
        if action.shortcutContext() != Qt.ShortcutContext.ApplicationShortcut:
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(f"{shortcut.description} ({key_text(shortcut.keys)})")
        window.addAction(action)
        actions[shortcut.name] = action
    _describe_buttons(window)
    for attr, title, key in PANELS:  # the tool bar's panel buttons say their key
        getattr(window, attr).toggleViewAction().setToolTip(
            f"Show or hide {title} ({key} shows it)"
        )
    help_menu = window.menuBar().addMenu("&Help")
    help_menu.addAction(actions["help"])
    return actions


def _handlers(window: MainWindow) -> dict[str, QAction | Callable[[], None]]:
    """What each table entry runs (the same as its button or action)."""
    chat = window.chat
    dialog: list[ShortcutsDialog] = []

    def show_help() -> None:
        if not dialog:
            dialog.append(ShortcutsDialog(window))
        dialog[0].show()
        dialog[0].raise_()
        dialog[0].activateWindow()

    handlers: dict[str, QAction | Callable[[], None]] = {
        "new_chat": window.new_chat_action,
        "stop": window.stop_shortcut.emit,
        "regenerate": lambda: _press(window, chat.regenerate_button, "Regenerate"),
        "edit_last": lambda: _press(window, chat.edit_button, "Edit last message"),
        "copy_reply": window.copy_reply_action,
        "search": lambda: _search(window),
        "focus_input": lambda: chat.input.setFocus(Qt.FocusReason.ShortcutFocusReason),
        "help": show_help,
        "quit": window.quit_action,
    }
    for attr, _title, _key in PANELS:
        dock = getattr(window, attr)
        handlers[f"panel:{attr}"] = lambda d=dock: show_panel(d)
    return handlers


def _press(window: MainWindow, button: QAbstractButton, what: str) -> None:
    """Presses `button` as a click would; a disabled one says so instead of doing nothing."""
    if button.isEnabled() and button.isVisible():
        button.click()
    else:
        window.statusBar().showMessage(f"{what} is not available now.", 3000)


def show_panel(dock: QDockWidget) -> None:
    """Shows a side panel (opens it if closed, brings its tab to the front) and puts the focus on
    its first control."""
    dock.show()
    dock.raise_()
    target = first_stop(dock.widget()) if dock.widget() is not None else None
    if isinstance(target, QScrollArea) and target.widget() is not None:
        target = first_stop(target.widget()) or target  # a control, not the scrolling area
    (target or dock).setFocus(Qt.FocusReason.ShortcutFocusReason)


def _search(window: MainWindow) -> None:
    show_panel(window.chats_dock)
    search = window.conversations.search
    search.setFocus(Qt.FocusReason.ShortcutFocusReason)
    search.selectAll()


def _describe_buttons(window: MainWindow) -> None:
    """The chat's buttons say their key in their tooltip and to screen readers."""
    chat = window.chat
    by_name = {s.name: s for s in SHORTCUTS}
    for button, name in (
        (chat.regenerate_button, "regenerate"),
        (chat.edit_button, "edit_last"),
        (chat.stop_button, "stop"),
        (window.conversations.new_button, "new_chat"),
    ):
        shortcut = by_name[name]
        text = f"{shortcut.description} ({key_text(shortcut.keys)})"
        if not button.toolTip():
            button.setToolTip(text)
        if not button.accessibleDescription():
            button.setAccessibleDescription(text)


class ShortcutsDialog(QDialog):
    """The list of keys: every entry of SHORTCUTS (keys as bound), then CONTROL_KEYS."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.setAccessibleName("Keyboard shortcuts")
        rows = [(key_text(s.keys), f"{s.text}: {s.description}") for s in SHORTCUTS]
        rows += list(CONTROL_KEYS)
        self.table = QTableWidget(len(rows), 2)
        self.table.setAccessibleName("Keyboard shortcuts")
        self.table.setHorizontalHeaderLabels(["Keys", "What they do"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setWordWrap(True)
        for row, (keys, does) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(keys))
            self.table.setItem(row, 1, QTableWidgetItem(does))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.resizeRowsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        column = QVBoxLayout(self)
        column.addWidget(self.table)
        column.addWidget(buttons)
        self.resize(620, 560)

    def texts(self) -> list[tuple[str, str]]:
        """The rows as shown: (keys, what they do)."""
        return [
            (self.table.item(row, 0).text(), self.table.item(row, 1).text())
            for row in range(self.table.rowCount())
        ]
