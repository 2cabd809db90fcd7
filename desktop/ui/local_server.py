"""The window's "Local server" switch: the model the window has loaded, behind OpenAI's API.

A small self-contained widget (a check box and the address) with its behaviour: checking it
starts desktop/server on a thread of its own (`BackgroundServer`) over the window's ChatService,
so requests from the server and the window's own replies take turns in one queue; unchecking
it, or `stop()` when the window closes, ends it and cancels the server's runs. Each request is
a line for the status bar (`status_message`); a port in use unchecks the box and says so.
The server's notes come from its own thread and reach the GUI thread through a queued signal
into a slot (cases G2, G4).
Does not know: the rest of the window (the owner adds the widget and shows `status_message`).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QStyle, QWidget

from desktop.chat_service import ChatService
from desktop.history import History
from desktop.server.app import create_app
from desktop.server.command import DEFAULT_HOST, DEFAULT_PORT
from desktop.server.runner import BackgroundServer, ServerStartError
from desktop.server.saving import ChatSaver


class LocalServerSwitch(QWidget):
    """`service`: the window's ChatService (its model is what is served, also after a model
    change). `history`: where the server's chats are saved (None: not saved)."""

    status_message = Signal(str)
    _noted = Signal(str)  # emitted on the server's thread; delivered queued to `_show`

    def __init__(
        self,
        service: ChatService,
        history: History | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.service, self.history, self.host, self.port = service, history, host, port
        self.server: BackgroundServer | None = None
        self.check = QCheckBox("Local server")
        self.check.setToolTip(
            "Serve the loaded model over OpenAI's API on this computer, with logprobs "
            "(any OpenAI client, Open WebUI, SillyTavern)"
        )
        self.address = QLabel("off")
        self.address.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout(self)
        # Below the Settings panel's scrolling column: its edges line up with the column's.
        style = self.style()
        left = style.pixelMetric(QStyle.PixelMetric.PM_LayoutLeftMargin)
        right = style.pixelMetric(QStyle.PixelMetric.PM_LayoutRightMargin)
        row.setContentsMargins(left, 2, right, 4)
        row.addWidget(self.check)
        row.addWidget(self.address, 1)
        self._noted.connect(self._show, Qt.ConnectionType.QueuedConnection)
        self.check.toggled.connect(self._toggled)

    @Slot(bool)
    def _toggled(self, on: bool) -> None:
        if on and self.server is None:
            self._start()
        elif not on:
            self.stop()

    def _start(self) -> None:
        saver = ChatSaver(self.history) if self.history is not None else None
        app = create_app(self.service, saver=saver, notify=self._noted.emit)
        try:
            self.server = BackgroundServer(app, self.host, self.port)
        except ServerStartError as err:
            self.check.setChecked(False)
            self.status_message.emit(str(err))
            return
        self.address.setText(self.server.url)
        self.status_message.emit(f"Local server on at {self.server.url}")

    def stop(self) -> None:
        """End the server (its runs are cancelled); the window's own runs go on."""
        if self.server is None:
            return
        self.server.stop()
        self.server = None
        self.address.setText("off")
        if self.check.isChecked():
            self.check.setChecked(False)
        self.status_message.emit("Local server off")

    @Slot(str)
    def _show(self, text: str) -> None:
        self.status_message.emit(text)
