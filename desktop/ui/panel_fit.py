"""Side panels that make way for the chat on a narrow window (as LM Studio and GPT4All do).

Owns one rule: the chat column (the main window's central widget) keeps at least its minimum
width (the message box and its buttons, see messages.MESSAGE_BOX_MIN_WIDTH). When the window is
too narrow for the chat and the side panels (docks on the left and right) at their minimum
widths, whole sides are hidden: the left one (chats, settings) first, then the right one (token
inspector and its tabs). A side the person has just asked for (its tool-bar toggle, or a click on
a token, which shows the inspector) is kept and the other side gives way. Panels hidden here come
back when the window is wide enough again (with a margin, so a window at the edge does not
flicker); panels the person closed stay closed.

Knows docks and widths only; nothing about what the panels show.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QStyle, QWidget

SIDE_AREAS = (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)
"""The areas that take width from the chat, in the order they give way."""

RESTORE_MARGIN = 80
"""px a window must be wider than the bare fit before a hidden side comes back."""


class PanelFitter(QObject):
    """Hides and restores `window`'s side docks so that `centre` keeps its minimum width (px,
    logical: the same rule holds at any QT_SCALE_FACTOR). An event filter on the window (resize,
    show) and on each dock (shown by anything but this fitter: the person's request)."""

    def __init__(self, window: QMainWindow, centre: QWidget, docks: list[QDockWidget]) -> None:
        super().__init__(window)
        self.window = window
        self.centre = centre
        self.docks = docks
        self.auto_hidden: list[QDockWidget] = []  # hidden here, shown again when there is room
        self._current: set[QDockWidget] = set()  # the shown tab of each auto-hidden group
        self._busy = False
        self._started = False  # the window's first show seen (its docks are shown before it)
        for dock in docks:
            dock.installEventFilter(self)
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self._started = self._started or event.type() == QEvent.Type.Show
            self.fit()
        elif (
            watched in self.docks
            and event.type() == QEvent.Type.Show
            and self._started  # not the window's own first show
            and not self._busy
        ):
            self._shown(watched)  # type: ignore[arg-type]  # the docks are QDockWidgets
        return False

    # ---- widths ------------------------------------------------------------------------------
    def side_width(self, area: Qt.DockWidgetArea, docks: list[QDockWidget]) -> int:
        """The narrowest `area` can be with `docks` open (px, its separator included)."""
        in_area = [d for d in docks if self.window.dockWidgetArea(d) == area]
        if not in_area:
            return 0
        separator = self.window.style().pixelMetric(
            QStyle.PixelMetric.PM_DockWidgetSeparatorExtent, None, self.window
        )
        return max(max(d.minimumSizeHint().width(), d.minimumWidth()) for d in in_area) + separator

    def needed_width(self, docks: list[QDockWidget]) -> int:
        """The window width (px) the chat's minimum and these open docks need."""
        centre = max(self.centre.minimumSizeHint().width(), self.centre.minimumWidth())
        return centre + sum(self.side_width(area, docks) for area in SIDE_AREAS)

    def open_docks(self) -> list[QDockWidget]:
        """Docks that are not closed (a dock behind another's tab counts as open)."""
        return [d for d in self.docks if not d.isHidden()]

    # ---- the rule ----------------------------------------------------------------------------
    def fit(self, keep: Qt.DockWidgetArea | None = None) -> None:
        """Hides sides until the chat fits (`keep`'s side last), or shows hidden ones that fit."""
        if self._busy:
            return
        self._busy = True
        try:
            width = self.window.width()
            order = [a for a in SIDE_AREAS if a != keep] + ([keep] if keep in SIDE_AREAS else [])
            for area in order:
                if self.needed_width(self.open_docks()) <= width:
                    break
                if keep is not None and area == keep:
                    break  # the side the person asked for stays, even if the chat shrinks
                self._hide_side(area)
            for area in reversed(SIDE_AREAS):
                self._restore_side(area, width)
        finally:
            self._busy = False

    def _hide_side(self, area: Qt.DockWidgetArea) -> None:
        for dock in self.open_docks():
            if self.window.dockWidgetArea(dock) == area:
                if not dock.visibleRegion().isEmpty():  # the shown tab (others are behind it)
                    self._current.add(dock)
                self.auto_hidden.append(dock)
                dock.hide()

    def _restore_side(self, area: Qt.DockWidgetArea, width: int) -> None:
        waiting = [d for d in self.auto_hidden if self.window.dockWidgetArea(d) == area]
        if not waiting or self.needed_width(self.open_docks() + waiting) + RESTORE_MARGIN > width:
            return
        for dock in waiting:
            self.auto_hidden.remove(dock)
            dock.show()
        for dock in waiting:
            if dock in self._current:
                self._current.discard(dock)
                dock.raise_()

    def _shown(self, dock: QDockWidget) -> None:
        """`dock` was shown (tool bar, a token clicked, its tab picked): its side stays."""
        if dock in self.auto_hidden:
            self.auto_hidden.remove(dock)
        self._current.discard(dock)
        self.fit(keep=self.window.dockWidgetArea(dock))
