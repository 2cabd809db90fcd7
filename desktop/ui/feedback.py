"""What the window tells the person outside a reply: error banners and notices in the chat column,
and status-bar lines.

Owns: the banners it put up that are cleared later (load errors once a model loads; notices and
load errors once the next message is sent). Handed to the controllers that report something; it
knows the chat view and the status bar, nothing about conversations or models.
Signal: error_shown(str) for every error reported (the self-test and tests listen).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from desktop.ui.main_window import MainWindow
from desktop.ui.messages import ErrorBanner, NoticeBanner


class Feedback(QObject):
    error_shown = Signal(str)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._load_banners: list[ErrorBanner] = []  # cleared once a model loads
        self._notices: list[NoticeBanner] = []  # cleared when the next message is sent

    def status(self, message: str, ms: int = 5000) -> None:
        self.window.statusBar().showMessage(message, ms)

    def clear_status(self) -> None:
        self.window.statusBar().clearMessage()

    def show_error(self, message: str) -> ErrorBanner:
        """A banner in the chat column and the status bar; emits error_shown."""
        banner = ErrorBanner(message)
        self.window.chat.add_bubble(banner)
        self.status(message, 10000)
        self.error_shown.emit(message)
        return banner

    def report(self, message: str) -> None:
        """An error already shown elsewhere (in its reply's bubble): only emits error_shown."""
        self.error_shown.emit(message)

    def show_load_error(self, message: str) -> None:
        """A model that could not be loaded: shown until a model loads or a message is sent."""
        self._load_banners.append(self.show_error(message))

    def show_notice(self, message: str) -> None:
        """Something the person should know that is not an error (e.g. a model fallback), shown
        until the next message is sent."""
        notice = NoticeBanner(message)
        self._notices.append(notice)
        self.window.chat.add_bubble(notice)
        self.status(message, 15000)

    def clear_load_errors(self) -> None:
        for banner in self._load_banners:  # the load that failed is no longer the story
            self.window.chat.remove_bubble(banner)
        self._load_banners.clear()

    def clear_read(self) -> None:
        """A message is being sent: notices and load errors have been read; the chat goes on."""
        for banner in [*self._notices, *self._load_banners]:
            self.window.chat.remove_bubble(banner)
        self._notices.clear()
        self._load_banners.clear()

    def forget(self) -> None:
        """The chat column was cleared (its banners went with it)."""
        self._notices.clear()
        self._load_banners.clear()
