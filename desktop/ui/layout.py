"""Small layout helpers shared by the views (no behaviour): side panels that scroll, and text
views as tall as their content."""

from __future__ import annotations

import math

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QSizePolicy, QTextEdit, QVBoxLayout, QWidget


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


class GrowsToContent:
    """Mixin for a QTextEdit (or QTextBrowser) in the chat column: no frame, no scroll bars, as
    tall as its document at the width it is given (the column scrolls, not the view). List it
    before the Qt class; call `grow_to_content()` in __init__."""

    def grow_to_content(self: QTextEdit) -> None:  # type: ignore[misc]
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def _fit_height(self: QTextEdit, *_args) -> None:  # type: ignore[misc]
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth() + 2
        self.setFixedHeight(max(height, self.fontMetrics().height() + 6))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)  # type: ignore[misc]
        self._fit_height()

    def sizeHint(self) -> QSize:
        return QSize(400, self.height())  # type: ignore[attr-defined]
