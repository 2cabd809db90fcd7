"""The main window's keyboard focus order, set in one place (`FocusOrder.apply`).

Tab goes: the message box and the controls beside it (Send or Stop, Regenerate, Edit last), the
messages first to last (each one's buttons, then its token view), the right side panel that is
shown (Token inspector, Pipeline, Attention or Layers) and its tab bar, then the left one (Chats
or Settings) and its tab bar, then whatever else the window holds; Shift+Tab goes back.

Why it is set here: Qt puts a widget at the end of its window's focus chain when it is added, so
the chat's bubbles (added as a chat grows) came after every panel field. And QMainWindow moves a
panel whose tab is not shown off-screen instead of hiding it, so Tab still walked through the
hidden Settings fields and a screen reader read them; here a panel's content is hidden while its
tab is not shown. The order is set again after the chat column changes (a bubble added or gone).
"""

from __future__ import annotations

import itertools

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QPlainTextEdit,
    QTabBar,
    QTextEdit,
    QWidget,
)


def is_tab_stop(widget: QWidget) -> bool:
    """Whether Tab may stop on `widget`, as Qt decides: it takes Tab focus, is shown and enabled,
    and hands its focus to no other widget (a spin box's line edit hands it to the spin box)."""
    return _takes_tab(widget) and widget.isVisible() and widget.isEnabled()


def _takes_tab(widget: QWidget) -> bool:
    return bool(widget.focusPolicy() & Qt.FocusPolicy.TabFocus) and widget.focusProxy() is None


def in_tree_order(root: QWidget) -> list[QWidget]:
    """`root` and the widgets inside it that may take Tab focus (shown or not: a hidden one keeps
    its place for when it shows), depth first, each parent's children in the order they were
    added (the order Qt gives a new subtree in the focus chain), in `root`'s window only.

    Read from the widget tree, not by walking nextInFocusChain: PySide records each widget that
    call returns as a child of the caller, so a walk made wrappers of live widgets go stale when
    an unrelated bubble before them was deleted."""
    window = root.window()
    widgets = [root, *root.findChildren(QWidget)]
    return [w for w in widgets if _takes_tab(w) and w.window() is window]


def first_stop(root: QWidget) -> QWidget | None:
    """The first widget inside `root` (or `root` itself) that Tab may stop on now, or None."""
    return next((w for w in in_tree_order(root) if is_tab_stop(w)), None)


class FocusOrder(QObject):
    """Owns the focus order of a `MainWindow` (see the module docstring)."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.docks = window.findChildren(QDockWidget)
        for dock in self.docks:
            dock.visibilityChanged.connect(lambda shown, d=dock: self._dock_shown(d, shown))
            self._dock_shown(dock, not dock.visibleRegion().isEmpty() or not window.isVisible())
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.setInterval(0)
        self._later.timeout.connect(self.apply)
        window.chat.column_widget.installEventFilter(self)
        self.apply()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.ChildAdded, QEvent.Type.ChildRemoved):
            self._later.start()  # once, after the bubbles of this change are in
        return False

    def _dock_shown(self, dock: QDockWidget, shown: bool) -> None:
        """A panel's content is hidden while its tab is behind another (or the panel closed)."""
        content = dock.widget()
        if content is not None and content.isHidden() == shown:
            policy = content.sizePolicy()
            policy.setRetainSizeWhenHidden(True)  # the panels keep their widths
            content.setSizePolicy(policy)
            content.setVisible(shown)
        if hasattr(self, "_later"):
            self._later.start()  # the tab bars exist once the window is laid out

    def order(self) -> list[QWidget]:
        """The window's would-be tab stops in the order Tab should take them."""
        window, chat = self.window, self.window.chat
        column = chat.column_widget
        beside_box = [
            w
            for w in in_tree_order(chat)
            if w not in (chat, chat.input, chat.scroll) and not column.isAncestorOf(w)
        ]
        ordered = [chat.input, *beside_box, chat.scroll]
        for index in range(chat.column.count()):
            item = chat.column.itemAt(index).widget()
            if item is not None:
                ordered += in_tree_order(item)
        for area in (Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea):
            docks = [d for d in self.docks if window.dockWidgetArea(d) == area]
            for dock in docks:
                ordered += in_tree_order(dock)
            for bar in self._tab_bars(docks):
                ordered += in_tree_order(bar)  # the bar, then its scroll buttons
        placed = set(ordered)
        return ordered + [w for w in in_tree_order(window) if w not in placed and w is not window]

    def _tab_bars(self, docks: list[QDockWidget]) -> list[QWidget]:
        """The tab bars QMainWindow made for these panels (one per group of tabbed panels)."""
        titles = {dock.windowTitle() for dock in docks}
        bars = self.window.findChildren(QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly)
        return [bar for bar in bars if any(bar.tabText(i) in titles for i in range(bar.count()))]

    def apply(self) -> None:
        """Sets the order (QWidget.setTabOrder, pair by pair); Tab in a text box (the system
        prompt, as the message box) moves on rather than typing a tab, so no box traps the
        keyboard (a tab character can still be pasted)."""
        ordered = self.order()
        for box in ordered:
            if isinstance(box, QPlainTextEdit | QTextEdit) and not box.tabChangesFocus():
                box.setTabChangesFocus(True)
        for first, second in itertools.pairwise(ordered):
            QWidget.setTabOrder(first, second)
