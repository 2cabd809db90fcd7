"""A visible ring around the control that has the keyboard focus, for every control of a window.

Fusion draws no focus at all on flat tool buttons, plain push buttons, tab bars, check boxes or the
painted views (token views, charts), and the style sheet's buttons drew none either. One
`QFocusFrame` (the frame Qt's macOS style uses) follows the focus instead, so every control,
painted or not, gets the same ring without changing how it draws; its colour is the theme's
`@focus` (style.qss, light and dark in theme.STYLE_VARS). As the web's `:focus-visible`, the ring
shows when the focus came from the keyboard or from the app (Tab, a shortcut, the message box at
start), and not for a mouse click, where the pointer already says where the person is.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QFocusFrame, QWidget


class FocusRing(QObject):
    """Keeps a focus frame on `window`'s focus widget. `frame.widget()` is the ringed control
    (None while the focus is outside the window or came from a mouse click)."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.frame = QFocusFrame(window)
        self.frame.setObjectName("focusRing")
        self.frame.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        app = QApplication.instance()
        assert isinstance(app, QApplication)  # widgets exist, so the application does
        app.focusChanged.connect(self._focus_changed)  # dropped with this object (PySide)
        self._focus_changed(None, QApplication.focusWidget())

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        clicked = QGuiApplication.mouseButtons() != Qt.MouseButton.NoButton
        if new is None or clicked or new.window() is not self.window:
            self.frame.setWidget(None)
        else:
            self.frame.setWidget(new)
