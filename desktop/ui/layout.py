"""Small layout helpers shared by the side panels (views only; no behaviour)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget


def fill_with_scrolling(panel: QWidget, inner: QWidget) -> QScrollArea:
    """Make `inner` the whole content of `panel`, scrolling vertically and kept to the panel's
    width (no sideways scroll bar, which would hide controls at the right edge). The panel is never
    narrower than `inner`'s minimum and the scroll bar, so nothing is cut off on the right."""
    scroll = _FitWidthScroll()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(inner)
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return scroll


class _FitWidthScroll(QScrollArea):
    """A vertical scroll area whose narrowest width is its content's narrowest plus the scroll bar
    (a plain QScrollArea may be narrower than its content, cutting off the right edge)."""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        inner = self.widget()
        if inner is None:
            return hint
        width = (
            inner.minimumSizeHint().width()
            + self.verticalScrollBar().sizeHint().width()
            + 2 * self.frameWidth()
        )
        return QSize(max(hint.width(), width), hint.height())
