"""The main window's layout: chat in the centre, chats and settings on the left, the token
inspector on the right, a tool bar and a status bar (model, provider, context used / size). On a
narrow window the side panels give way to the chat (panel_fit.py; the tool bar shows them again).

A view: it owns widgets and their placement, not behaviour. `close_guard` (set by the
controller) may defer a close while a reply stops; `closing` is emitted when the window goes.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence, QShowEvent
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QToolBar, QWidget

from desktop import paths
from desktop.ui.attention_view import AttentionView
from desktop.ui.conversations import ConversationList
from desktop.ui.inspector import InspectorPanel
from desktop.ui.layers_view import LayersView
from desktop.ui.messages import ChatView
from desktop.ui.panel_fit import PanelFitter
from desktop.ui.pipeline_view import PipelineView
from desktop.ui.settings_panel import SettingsPanel


class MainWindow(QMainWindow):
    closing = Signal()
    stop_shortcut = Signal()  # Esc, bound by shortcuts.py
    close_guard: Callable[[], bool] | None = None
    """Set by the controller: returns False to keep the window open for now (a reply is
    stopping); the controller closes the window again once it may."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tokenglass")
        icon = paths.assets_dir() / "icon.svg"
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.resize(1360, 860)

        self.chat = ChatView()
        self.setCentralWidget(self.chat)
        self.conversations = ConversationList()
        self.settings = SettingsPanel()
        self.inspector = InspectorPanel()
        self.chats_dock = self._dock(
            "Chats", self.conversations, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.settings_dock = self._dock(
            "Settings", self.settings, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.tabifyDockWidget(self.chats_dock, self.settings_dock)
        self.chats_dock.raise_()
        self.inspector_dock = self._dock(
            "Token inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.pipeline = PipelineView()  # a tab beside the inspector
        self.pipeline_dock = self._dock(
            "Pipeline", self.pipeline, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.tabifyDockWidget(self.inspector_dock, self.pipeline_dock)
        self.attention = AttentionView()  # tabs beside them: inside the model
        self.attention_dock = self._dock(
            "Attention", self.attention, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.tabifyDockWidget(self.pipeline_dock, self.attention_dock)
        self.layers = LayersView()
        self.layers_dock = self._dock("Layers", self.layers, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.attention_dock, self.layers_dock)
        self.inspector_dock.raise_()
        for dock, narrowest in ((self.chats_dock, 200), (self.inspector_dock, 280)):
            dock.setMinimumWidth(narrowest)  # px: narrower, the side gives way (panel_fit.py)
        self.resizeDocks([self.chats_dock], [290], Qt.Orientation.Horizontal)
        self.resizeDocks([self.inspector_dock], [360], Qt.Orientation.Horizontal)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(16, 16))
        self.addToolBar(toolbar)
        self.new_chat_action = QAction("New chat", self)
        self.new_chat_action.setShortcut(QKeySequence.StandardKey.New)
        self.copy_reply_action = QAction("Copy last reply", self)
        self.quit_action = QAction("Quit", self)
        self.quit_action.setShortcuts([QKeySequence("Ctrl+Q")])
        self.quit_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        self.quit_action.triggered.connect(self.close)  # through the close guard
        self.addAction(self.quit_action)
        toolbar.addAction(self.new_chat_action)
        toolbar.addAction(self.copy_reply_action)
        toolbar.addSeparator()
        docks = (
            self.chats_dock,
            self.settings_dock,
            self.inspector_dock,
            self.pipeline_dock,
            self.attention_dock,
            self.layers_dock,
        )
        for dock in docks:
            toolbar.addAction(dock.toggleViewAction())

        self.model_label = QLabel("No model")
        self.provider_label = QLabel("")
        self.context_label = QLabel("")
        for label in (self.model_label, self.provider_label, self.context_label):
            label.setObjectName("status")
            self.statusBar().addPermanentWidget(label)
        self.model_label.setAccessibleName("Model")
        self.provider_label.setAccessibleName("Execution provider")
        self.context_label.setAccessibleName("Context used")

        # The window may be narrower than the chat and the open panels: PanelFitter then hides
        # panels (the tool bar's toggles show them again) instead of the chat being squeezed.
        # (Esc, Stop, is in shortcuts.py's table with every other key.)
        self.setMinimumSize(self.chat.minimumSizeHint().width(), 400)
        self.panel_fit = PanelFitter(self, self.chat, list(docks))

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "") + "Dock")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetMovable
        )
        self.addDockWidget(area, dock)
        return dock

    def fit_to_screen(self) -> None:
        """At most the screen's free area (a 1366x768 laptop, a 800x600 screen or 150 % scale):
        the side panels that no longer fit start hidden (PanelFitter)."""
        free = self.screen().availableGeometry()  # logical px
        self.resize(min(self.width(), free.width()), min(self.height(), free.height()))

    def showEvent(self, event: QShowEvent) -> None:
        """On first show the message box has the keyboard focus, so a person can type at once."""
        super().showEvent(event)
        if not event.spontaneous():
            self.chat.input.setFocus(Qt.FocusReason.ActiveWindowFocusReason)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.close_guard is not None and not self.close_guard():
            event.ignore()
            return
        self.closing.emit()
        super().closeEvent(event)
