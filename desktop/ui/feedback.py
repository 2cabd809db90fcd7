"""What the window tells the person outside a reply: error banners and notices in the chat column,
and status-bar lines.

Owns: the banners it put up that are cleared later (load errors once a model loads; notices and
load errors once the next message is sent), and the status-bar line: a banner of the same kind
replaces the one before (one load error, one copy of an error or notice), and a line that says
how things are (a `kind`: "stopping", "error") goes when that state ends (`end_on`), not after a
fixed time. Handed to the controllers that report something; it knows the chat view and the
status bar, nothing about conversations or models.
Signal: error_shown(str) for every error reported (the self-test and tests listen).
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QObject, Signal, SignalInstance

from desktop.ui.main_window import MainWindow
from desktop.ui.messages import ErrorBanner, NoticeBanner


class Feedback(QObject):
    error_shown = Signal(str)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._load_banners: list[ErrorBanner] = []  # cleared once a model loads
        self._notices: list[NoticeBanner] = []  # cleared when the next message is sent
        self._errors: list[ErrorBanner] = []  # every error banner up (a repeat replaces its twin)
        self._line: tuple[str | None, str] = (None, "")  # the status line's (kind, text)

    def status(self, message: str, ms: int = 5000, kind: str | None = None) -> None:
        """A status-bar line for `ms` milliseconds (0: until replaced or its state ends).
        kind: the state it tells of ("stopping", "error"); `end` takes it away once the state is
        over, whatever time is left."""
        self.window.statusBar().showMessage(message, ms)
        self._line = (kind, message)

    def end(self, kind: str) -> None:
        """The state `kind` is over: its status line goes, if it is still the one shown."""
        bar = self.window.statusBar()
        if self._line[0] == kind and bar.currentMessage() == self._line[1]:
            bar.clearMessage()

    def end_on(self, kind: str, *signals: SignalInstance) -> None:
        """Ends the state `kind` (see `end`) whenever one of `signals` fires."""
        for signal in signals:
            signal.connect(lambda *_args, k=kind: self.end(k))

    def show_error(self, message: str) -> ErrorBanner:
        """A banner in the chat column (the same error shown before goes: one copy, the latest
        at the bottom) and the status bar until the next state change; emits error_shown."""
        for old in [b for b in self._errors if not shiboken6.isValid(b) or b.text() == message]:
            self._errors.remove(old)
            self._remove(old)
        banner = ErrorBanner(message)
        self._errors.append(banner)
        self.window.chat.add_bubble(banner)
        self.status(message, 10000, kind="error")
        self.error_shown.emit(message)
        return banner

    def _remove(self, banner: ErrorBanner | NoticeBanner) -> None:
        if shiboken6.isValid(banner):  # the column may have been cleared (another chat)
            self.window.chat.remove_bubble(banner)

    def report(self, message: str) -> None:
        """An error already shown elsewhere (in its reply's bubble): only emits error_shown."""
        self.error_shown.emit(message)

    def show_load_error(self, message: str) -> None:
        """A model that could not be loaded: shown until a model loads or a message is sent; it
        replaces the banner of a load that failed before (one failed load at a time is news)."""
        self.clear_load_errors()
        self._load_banners.append(self.show_error(message))

    def show_notice(self, message: str) -> NoticeBanner:
        """Something the person should know that is not an error (e.g. a model fallback), shown
        until the next message is sent (the same notice shown before goes: one copy)."""
        for old in [n for n in self._notices if not shiboken6.isValid(n) or n.text() == message]:
            self._notices.remove(old)
            self._remove(old)
        notice = NoticeBanner(message)
        self._notices.append(notice)
        self.window.chat.add_bubble(notice)
        self.status(message, 15000)
        return notice

    def dismiss(self, banner: NoticeBanner) -> None:
        """A notice that stopped being true goes."""
        if banner in self._notices:
            self._notices.remove(banner)
        self._remove(banner)

    def clear_load_errors(self) -> None:
        for banner in self._load_banners:  # the load that failed is no longer the story
            self._remove(banner)
        self._load_banners.clear()
        self.end("error")

    def clear_read(self) -> None:
        """A message is being sent: notices and load errors have been read; the chat goes on."""
        for banner in [*self._notices, *self._load_banners]:
            self._remove(banner)
        self._notices.clear()
        self._load_banners.clear()

    def forget(self) -> None:
        """The chat column was cleared (its banners went with it)."""
        self._notices.clear()
        self._load_banners.clear()
        self._errors.clear()
