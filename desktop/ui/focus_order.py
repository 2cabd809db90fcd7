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

import shiboken6
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


_TAB_POLICIES = frozenset(
    (Qt.FocusPolicy.TabFocus, Qt.FocusPolicy.StrongFocus, Qt.FocusPolicy.WheelFocus)
)


def _takes_tab(widget: QWidget) -> bool:
    return widget.focusPolicy() in _TAB_POLICIES and widget.focusProxy() is None


def in_tree_order(root: QWidget) -> list[QWidget]:
    """`root` and the widgets inside it that may take Tab focus (shown or not: a hidden one keeps
    its place for when it shows), depth first, each parent's children in the order they were
    added (the order Qt gives a new subtree in the focus chain); not those of a window inside
    it (a dialog, a menu).

    Read from the widget tree, not by walking nextInFocusChain: PySide records each widget that
    call returns as a child of the caller, so a walk made wrappers of live widgets go stale when
    an unrelated bubble before them was deleted."""
    found = [w for w in [root, *root.findChildren(QWidget)] if _takes_tab(w)]
    if any(w.isWindow() for w in root.findChildren(QWidget)):
        window = root.window()
        found = [w for w in found if w.window() is window]
    return found


def first_stop(root: QWidget) -> QWidget | None:
    """The first widget inside `root` (or `root` itself) that Tab may stop on now, or None."""
    return next((w for w in in_tree_order(root) if is_tab_stop(w)), None)


class FocusOrder(QObject):
    """Owns the focus order of a `MainWindow` (see the module docstring). The whole order is set
    when the window is built and when QMainWindow makes its panel tab bars; after a change in the
    chat column only the messages' part is set again (a long chat has thousands of widgets)."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.docks = window.findChildren(QDockWidget)
        self._bars: list[QTabBar] = []
        self._after_messages: QWidget | None = None  # the first stop after the messages
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.setInterval(0)
        self._later.timeout.connect(self.apply_messages)
        for dock in self.docks:
            dock.visibilityChanged.connect(lambda shown, d=dock: self._dock_shown(d, shown))
            self._dock_shown(dock, not dock.visibleRegion().isEmpty() or not window.isVisible())
        window.chat.column_widget.installEventFilter(self)
        self.apply()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.ChildAdded, QEvent.Type.ChildRemoved):
            self._later.start()  # once, after the bubbles of this change are in
        return False

    def _dock_shown(self, dock: QDockWidget, shown: bool) -> None:
        """A panel's content is hidden while its tab is behind another (or the panel closed)."""
        if not shiboken6.isValid(self.window):
            return  # the window is being destroyed (its panels hide as it goes)
        content = dock.widget()
        if content is not None and content.isHidden() == shown:
            policy = content.sizePolicy()
            policy.setRetainSizeWhenHidden(True)  # the panels keep their widths
            content.setSizePolicy(policy)
            content.setVisible(shown)
        bars = self.window.findChildren(QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly)
        if hasattr(self, "_bars") and bars != self._bars:
            self.apply()  # QMainWindow made (or dropped) a tab bar: it takes its place

    # ---- the order ---------------------------------------------------------------------------
    def _around_box(self) -> list[QWidget]:
        """The message box, then the controls beside it (not the messages), then the messages'
        scrolling area."""
        chat = self.window.chat
        beside = [
            w
            for child in chat.findChildren(
                QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly
            )
            if child is not chat.scroll
            for w in in_tree_order(child)
            if w is not chat.input
        ]
        return [chat.input, *beside, chat.scroll]

    def _messages(self) -> list[QWidget]:
        """Each bubble's stops, first bubble to last."""
        column, stops = self.window.chat.column, []
        for index in range(column.count()):
            item = column.itemAt(index).widget()
            if item is not None:
                stops += in_tree_order(item)
        return stops

    def _side_panels_and_rest(self) -> list[QWidget]:
        """The right panels and their tab bar, the left ones and theirs, then everything else
        (tool bar, status bar) that takes Tab focus."""
        window, ordered = self.window, []
        self._bars = window.findChildren(QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly)
        for area in (Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea):
            docks = [d for d in self.docks if window.dockWidgetArea(d) == area]
            titles = {dock.windowTitle() for dock in docks}
            for dock in docks:
                ordered += in_tree_order(dock)
            for bar in self._bars:
                if any(bar.tabText(i) in titles for i in range(bar.count())):
                    ordered += in_tree_order(bar)  # the bar, then its scroll buttons
        placed = set(ordered)
        skip = (window.chat, *self.docks, *self._bars)
        for child in window.findChildren(
            QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly
        ):
            if child not in skip and not child.isWindow():
                ordered += [w for w in in_tree_order(child) if w not in placed]
        return ordered

    def order(self) -> list[QWidget]:
        """The window's would-be tab stops in the order Tab should take them."""
        return self._around_box() + self._messages() + self._side_panels_and_rest()

    # ---- setting it --------------------------------------------------------------------------
    def apply(self) -> None:
        """Sets the whole order (QWidget.setTabOrder, pair by pair); Tab in a text box (the
        system prompt, as the message box) moves on rather than typing a tab, so no box traps
        the keyboard (a tab character can still be pasted)."""
        around, after = self._around_box(), self._side_panels_and_rest()
        for box in (*around, *after):
            if isinstance(box, QPlainTextEdit | QTextEdit) and not box.tabChangesFocus():
                box.setTabChangesFocus(True)
        self._after_messages = after[0] if after else None
        _chain(around)
        messages = self.apply_messages()
        _chain([messages[-1] if messages else around[-1], *after])

    def apply_messages(self) -> list[QWidget]:
        """Sets the messages' part: after the scrolling area, before the side panels. Returns
        the messages' stops."""
        messages = self._messages()
        tail = [self._after_messages] if self._after_messages is not None else []
        _chain([self.window.chat.scroll, *messages, *tail])
        return messages


def _chain(widgets: list[QWidget]) -> None:
    for first, second in itertools.pairwise(widgets):
        QWidget.setTabOrder(first, second)
