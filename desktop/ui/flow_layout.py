"""A layout that places its items left to right and wraps them onto a new line when the width
runs out (a view helper; no behaviour).

Used where a row of controls must stay whole in a narrow column: a bubble's header (its buttons
wrap under the name instead of being cut off at the right edge) and the probability legend (its
cells wrap instead of overlapping). Like a QHBoxLayout on one line: `addStretch` takes the spare
width of its line (so buttons after it sit at the right). With `justify` the items are cells of
one width in as many columns as fit, the lines balanced (3 + 2, not 4 + 1), filling the width.
Hidden widgets take no room. The height follows the
width (heightForWidth), so the parent grows by a line when the items wrap.

Source: the shape of Qt's Flow Layout example (doc.qt.io/qt-6/qtwidgets-layouts-flowlayout-
example.html), with stretches and justification added.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLayout, QLayoutItem, QSizePolicy, QSpacerItem, QWidget, QWidgetItem


class FlowLayout(QLayout):
    """Items in lines of at most the layout's width (px); lines `spacing` px apart."""

    def __init__(
        self, parent: QWidget | None = None, spacing: int = 6, justify: bool = False
    ) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._justify = justify
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    # ---- the QLayout interface ---------------------------------------------------------------
    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def insertWidget(self, index: int, widget: QWidget) -> None:
        """Like QBoxLayout.insertWidget: `widget` becomes item `index`."""
        self.addChildWidget(widget)
        self._items.insert(index, QWidgetItem(widget))
        self.invalidate()

    def addStretch(self, _stretch: int = 1) -> None:
        """A spacer that takes the spare width of its line (none at the start of a line)."""
        self.addItem(QSpacerItem(0, 0, QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum))

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # type: ignore[override]
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # type: ignore[override]
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, apply=True)

    def sizeHint(self) -> QSize:
        """Everything on one line."""
        shown = [item for item in self._items if _takes_room(item)]
        width = sum(item.sizeHint().width() for item in shown)
        width += self.spacing() * max(0, len(shown) - 1)
        height = max((item.sizeHint().height() for item in shown), default=0)
        return QSize(width, height).grownBy(self.contentsMargins())

    def minimumSize(self) -> QSize:
        """The widest single item: narrower than that, an item would be cut."""
        size = QSize(0, 0)
        for item in self._items:
            if _takes_room(item):
                size = size.expandedTo(item.minimumSize())
        return size.grownBy(self.contentsMargins())

    # ---- placing -----------------------------------------------------------------------------
    def _lines(self, width: int) -> list[list[QLayoutItem]]:
        """The items in lines of at most `width` px (a wider item gets a line of its own)."""
        lines: list[list[QLayoutItem]] = [[]]
        used = 0
        for item in self._items:
            if not _takes_room(item):
                continue
            is_stretch = item.spacerItem() is not None
            if is_stretch and not lines[-1]:
                continue  # a stretch at the start of a line would only indent it
            needed = item.sizeHint().width() + (self.spacing() if lines[-1] else 0)
            if lines[-1] and not is_stretch and used + needed > width:
                while lines[-1] and lines[-1][-1].spacerItem() is not None:
                    lines[-1].pop()  # a stretch that ended a line has nothing to push
                lines.append([])
                used, needed = 0, item.sizeHint().width()
            lines[-1].append(item)
            used += needed
        return [line for line in lines if line]

    def _grid(self, width: int) -> tuple[list[list[QLayoutItem]], int]:
        """`justify`: the items in balanced lines of equal cells; (lines, cell width in px)."""
        items = [item for item in self._items if _takes_room(item)]
        if not items:
            return [], 0
        widest = max(item.minimumSize().width() for item in items)  # cells may be this tight
        columns = max(1, min(len(items), (width + self.spacing()) // (widest + self.spacing())))
        rows = -(-len(items) // columns)
        columns = -(-len(items) // rows)  # balanced: 5 in 2 lines is 3 + 2
        cell = max(widest, (width - self.spacing() * (columns - 1)) // columns)
        return [items[i : i + columns] for i in range(0, len(items), columns)], cell

    def _place(self, rect: QRect, apply: bool) -> int:
        """Lays the items out in `rect` (when `apply`); returns the height they need (px)."""
        margins = self.contentsMargins()
        area = rect.marginsRemoved(margins)
        width = max(1, area.width())
        y = area.y()
        lines, cell = self._grid(width) if self._justify else (self._lines(width), 0)
        for line in lines:
            widths = [cell or min(item.sizeHint().width(), width) for item in line]
            spare = width - sum(widths) - self.spacing() * (len(line) - 1)
            growing = [i for i, item in enumerate(line) if item.spacerItem() is not None]
            for rank, i in enumerate(growing):
                share = spare // len(growing) + (1 if rank < spare % len(growing) else 0)
                widths[i] += max(0, share)
            height = max(item.sizeHint().height() for item in line)
            x = area.x()
            for item, item_width in zip(line, widths, strict=True):
                if apply:
                    item_height = min(height, item.sizeHint().height())
                    top = y + (height - item_height) // 2  # centred in its line
                    item.setGeometry(QRect(QPoint(x, top), QSize(item_width, item_height)))
                x += item_width + self.spacing()
            y += height + self.spacing()
        used = y - area.y() - (self.spacing() if y > area.y() else 0)
        return used + margins.top() + margins.bottom()


def _takes_room(item: QLayoutItem) -> bool:
    """A stretch, or a shown widget (a hidden widget's item is empty)."""
    return item.spacerItem() is not None or not item.isEmpty()


class WrappingRow(QWidget):
    """A widget holding a FlowLayout (`flow`) whose minimum height follows its width, so that a
    parent that sizes it by its size hint (a bubble kept to its hint's height) still gives it
    every line it wraps onto."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6) -> None:
        super().__init__(parent)
        self.flow = FlowLayout(self, spacing)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        height = self.flow.heightForWidth(self.width())
        if height != self.minimumHeight():
            self.setMinimumHeight(height)
