"""A visible ring around the control that has the keyboard focus, for every control of a window.

Fusion draws no focus at all on flat tool buttons, plain push buttons, tab bars, check boxes or the
painted views (token views, charts), and the style sheet's buttons drew none either. One
`QFocusFrame` (the frame Qt's macOS style uses) follows the focus instead, so every control,
painted or not, gets the same ring without changing how it draws. Its colour is the theme's
`@focus` (theme.STYLE_VARS, light and dark; at least 3:1 against what is around it, WCAG 1.4.11).
As the web's `:focus-visible`, the ring shows when the focus came from the keyboard or from the
app (Tab, a shortcut, the message box at start), and not for a mouse click, where the pointer
already says where the person is.
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QEvent, QObject, QPoint, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QApplication, QFocusFrame, QWidget

from desktop.ui import theme

RING_WIDTH = 2.0  # px


class RingFrame(QFocusFrame):
    """The ring: a rounded 2 px line in the theme's focus colour around the focused control, kept
    inside its parent's area (a control that fills its panel, such as a panel's scrolling area,
    gets the ring along its own edge instead of outside it, where the panel would clip it)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("focusRing")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.ringing = False  # around a control now (not read back with widget(): see FocusRing)
        self.hide()  # until it rings a control (setWidget(None) on a new frame does not hide it)

    def event(self, event: QEvent) -> bool:
        handled = super().event(event)
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Move, QEvent.Type.ZOrderChange):
            self.clearMask()  # the style masks all but a thin outer band; the ring may go inside
            if self.ringing and self.isVisible():
                self.raise_()  # above the control (styles put it under), so it is never hidden
        return handled

    def paintEvent(self, _event: QPaintEvent) -> None:
        area = QRectF(self.rect())
        parent = self.parentWidget()
        if parent is not None:
            area = area.intersected(QRectF(self.mapFrom(parent, QPoint(0, 0)), parent.size()))
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(focus_colour(), RING_WIDTH))
        half = RING_WIDTH / 2
        painter.drawRoundedRect(area.adjusted(half, half, -half, -half), 4, 4)
        painter.end()


def focus_colour() -> QColor:
    """The theme's focus colour (theme.STYLE_VARS "@focus", light or dark)."""
    return QColor(theme.STYLE_VARS[theme.app_is_dark()]["@focus"])


class FocusRing(QObject):
    """Keeps a focus ring on `window`'s focus widget. `target` is the ringed control (None while
    the focus is outside the window or came from a mouse click).

    The control is kept here rather than read back with QFocusFrame.widget(): PySide records a
    widget a getter returns as a child of the object asked, so the control's wrapper would die
    with the frame (which Qt deletes with the parent of whichever control it rings)."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.frame = RingFrame(window)
        self.target: QWidget | None = None
        app = QApplication.instance()
        assert isinstance(app, QApplication)  # widgets exist, so the application does
        app.focusChanged.connect(self._focus_changed)  # dropped with this object (PySide)
        self._focus_changed(None, QApplication.focusWidget())

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        if not shiboken6.isValid(self.window):
            return  # the window is being destroyed
        if not shiboken6.isValid(self.frame):
            # A focus frame lives beside its control, so it goes when the control's parent does
            # (a bubble of a closed chat): a new one takes over.
            self.frame = RingFrame(self.window)
        clicked = QGuiApplication.mouseButtons() != Qt.MouseButton.NoButton
        if new is None or clicked or new.window() is not self.window:
            self.target = None
        else:
            self.target = new
        self.frame.ringing = self.target is not None
        self.frame.setWidget(self.target)
        if self.target is not None:
            self.frame.raise_()
        else:
            self.frame.hide()  # also when no control of the window ever had the focus
