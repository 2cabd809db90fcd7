"""A reply rendered as Markdown (the "Text" view of a reply bubble, beside its "Tokens" view).

Owns: turning a reply's text into a read-only rich-text view (Qt's own Markdown importer, md4c,
GitHub dialect: tables, task lists, strikethrough, autolinks), and the "Tokens | Text" switch of a
bubble. What a reply's text may do there is limited on purpose:

- Raw HTML stays text (`MarkdownNoHTML`): `<b>`, `<img>`, `<script>` a model writes are shown
  as written, never become markup (without the flag Qt would make `<b>` bold and load `<img>`).
- Links are shown, never followed: a click opens nothing (their address is in the tooltip and
  in the right-click menu's "Copy Link Location"); images are never loaded, local or remote.
- A single newline is a line break (as chat apps show a model's lines), not a space as in
  CommonMark; blank lines still separate paragraphs. Code blocks keep their lines; a code line
  wider than the bubble wraps (the chat column never scrolls sideways).
- Code (blocks and `inline`) is in the monospace font; a tab is 4 spaces wide (Qt's default tab
  stop is 80 px, about 10 spaces). md4c itself turns a code line's leading tab into 4 spaces.

Knows text, not tokens: the bubble hands it the reply's text (the join of its tokens' text).
"""

from __future__ import annotations

import re

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import (
    QFontMetricsF,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QTextBrowser,
    QToolButton,
    QToolTip,
    QWidget,
)

from desktop.ui import theme
from desktop.ui.layout import GrowsToContent

_FEATURES = QTextDocument.MarkdownFeature
MARKDOWN_FEATURES = _FEATURES(
    _FEATURES.MarkdownDialectGitHub.value | _FEATURES.MarkdownNoHTML.value
)
"""GitHub's dialect with raw HTML read as text (QTextDocument.MarkdownNoHTML)."""

STREAM_RENDER_MS = 100
"""While a reply streams in the Text view it is rendered again at most this often: a render of
8,000 characters takes 2-7 ms here, so once per token at 80 tokens/s could take half the GUI's
time."""

TAB_SPACES = 4
"""A tab in the Text and Tokens views is this many spaces of the monospace font wide."""

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def with_line_breaks(text: str) -> str:
    """`text` with each single newline made a Markdown hard break (two trailing spaces), so a
    model's separate lines stay separate lines. Left as they are: lines inside fenced code
    blocks, indented (code) lines, the lines before a blank line or the end, and lines that end
    in a hard break already."""
    lines = text.split("\n")
    out: list[str] = []
    fence: str | None = None  # the fence that opened the code block we are in
    for index, line in enumerate(lines):
        opener = _FENCE.match(line)
        if fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = None
            out.append(line)
            continue
        if opener:
            fence = opener.group(1)
            out.append(line)
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        plain = line.strip() and following.strip() and not line.startswith(("    ", "\t"))
        out.append(line + "  " if plain and not line.endswith(("  ", "\\")) else line)
    return "\n".join(out)


def render_markdown(document: QTextDocument, text: str) -> None:
    """Fill `document` with `text` read as Markdown (see the module docstring for what it may
    do), code in the monospace font."""
    document.setMarkdown(with_line_breaks(text), MARKDOWN_FEATURES)
    mono = theme.mono_font()
    code = QTextCharFormat()
    code.setFontFamilies(mono.families())
    code.setFontFixedPitch(True)
    cursor = QTextCursor(document)
    cursor.beginEditBlock()
    block = document.begin()
    wrap = QTextBlockFormat()
    wrap.setNonBreakableLines(False)
    while block.isValid():
        in_code = block.blockFormat().nonBreakableLines()  # how md4c's code blocks come out
        if in_code:  # a long code line wraps: the view is as wide as the bubble, never wider
            cursor.setPosition(block.position())
            cursor.mergeBlockFormat(wrap)
        fragments = block.begin()
        while not fragments.atEnd():
            fragment = fragments.fragment()
            families = fragment.charFormat().fontFamilies() or []
            if in_code or "monospace" in families or fragment.charFormat().fontFixedPitch():
                cursor.setPosition(fragment.position())
                cursor.setPosition(
                    fragment.position() + fragment.length(), QTextCursor.MoveMode.KeepAnchor
                )
                cursor.mergeCharFormat(code)
            fragments += 1
        block = block.next()
    cursor.endEditBlock()


class ReplyTextView(GrowsToContent, QTextBrowser):
    """A reply as rendered Markdown, read-only, as tall as its content (the chat column
    scrolls, not the view). Signal: link_clicked(QUrl) (nothing is opened)."""

    link_clicked = Signal(QUrl)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self.link_clicked)
        self.highlighted.connect(self._hovered_link)
        self.setAccessibleName("Assistant reply as formatted text")
        self.setTabStopDistance(tab_width())
        self.source_text = ""
        self._pending: str | None = None
        self._later = QTimer(self, singleShot=True, interval=STREAM_RENDER_MS)
        self._later.timeout.connect(self._render_pending)
        self.grow_to_content()

    def set_reply_text(self, text: str) -> None:
        """Show `text` rendered now (nothing is done when it is what is shown already)."""
        self._later.stop()
        self._pending = None
        if text == self.source_text and not self.document().isEmpty():
            return
        self.source_text = text
        render_markdown(self.document(), text)

    def show_soon(self, text: str) -> None:
        """Show `text` within STREAM_RENDER_MS (a streaming reply: one render per interval,
        not one per token)."""
        self._pending = text
        if not self._later.isActive():
            self._later.start()

    def _render_pending(self) -> None:
        if self._pending is not None:
            self.set_reply_text(self._pending)

    def loadResource(self, kind: int, name: QUrl):
        """Nothing is loaded for a reply: no image, local or remote, no style sheet."""
        return None

    def _hovered_link(self, url: QUrl) -> None:
        self.setToolTip(url.toString() if not url.isEmpty() else "")
        if url.isEmpty():
            QToolTip.hideText()


def tab_width() -> float:
    """TAB_SPACES spaces of the monospace font, in pixels."""
    return TAB_SPACES * QFontMetricsF(theme.mono_font()).horizontalAdvance(" ")


class ReplyModeButtons(QWidget):
    """ "Tokens | Text": how a reply bubble shows its reply. Signal: mode_changed(str) with
    "tokens" or "text" (on a click; `set_mode` does not emit)."""

    mode_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QToolButton] = {}
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        for mode, label, tip in (
            ("tokens", "Tokens", "Show the reply as its tokens, coloured by probability"),
            ("text", "Text", "Show the reply as formatted text (Markdown, code in monospace)"),
        ):
            button = QToolButton()
            button.setText(label)
            button.setToolTip(tip)
            button.setAccessibleName(tip)
            button.setAutoRaise(True)
            button.setCheckable(True)
            button.setChecked(mode == "tokens")
            # a compact pair: the header row is tight in a narrow chat column
            button.setFixedWidth(button.fontMetrics().horizontalAdvance(label) + 10)
            button.clicked.connect(lambda _checked=False, m=mode: self.mode_changed.emit(m))
            self.group.addButton(button)
            self.buttons[mode] = button
            row.addWidget(button)

    def set_mode(self, mode: str) -> None:
        self.buttons[mode].setChecked(True)
