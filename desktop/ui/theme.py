"""Colours, fonts and the probability scale that every token view shares.

Owns: the legend-ed probability scale (five bins, each with a background colour for light and dark
themes and an underline style, the non-colour cue for colour-blind readers), the light/dark
decision (follows the system colour scheme), the application style sheet from assets/style.qss,
and the CJK/emoji font fallback (cases G5). Knows nothing about the engine or the chat.

The colours are a blue-to-orange ramp (ColorBrewer "PuOr"/"Oranges" tints), which stays
distinguishable under the common colour-vision deficiencies; the underline carries the same
information without colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QPalette, QTextCharFormat
from PySide6.QtWidgets import QApplication

from desktop import paths

# Families tried, in order, after the platform's UI font for glyphs it lacks (fontconfig does the
# same on most Linux desktops, but bundled apps and minimal systems need it said explicitly).
FALLBACK_FAMILIES = (
    "Noto Sans",
    "DejaVu Sans",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK KR",
    "Noto Color Emoji",
    "Segoe UI Emoji",
    "Apple Color Emoji",
)
MONO_FAMILIES = ("Noto Sans Mono", "DejaVu Sans Mono", "Menlo", "Consolas", "monospace")


@dataclass(frozen=True)
class ProbabilityBin:
    """One band of the scale: tokens whose probability is >= `low` (and below the previous bin)."""

    low: float
    label: str
    light: str  # background in the light theme
    dark: str  # background in the dark theme
    underline: QTextCharFormat.UnderlineStyle
    bar: str  # a stronger tint of the same hue, for charts (both themes)


PROBABILITY_SCALE: tuple[ProbabilityBin, ...] = (
    ProbabilityBin(
        0.9, "≥ 90 %", "#e3eefa", "#1e3550", QTextCharFormat.UnderlineStyle.NoUnderline, "#3d7bd9"
    ),
    ProbabilityBin(
        0.5, "50–90 %", "#bcd6f2", "#2d5680", QTextCharFormat.UnderlineStyle.NoUnderline, "#86b2ea"
    ),
    ProbabilityBin(
        0.2, "20–50 %", "#fde0b6", "#6b4a1a", QTextCharFormat.UnderlineStyle.DotLine, "#f2b45c"
    ),
    ProbabilityBin(
        0.05,
        "5–20 %",
        "#fdb87a",
        "#8a4a10",
        QTextCharFormat.UnderlineStyle.DashUnderline,
        "#ef8a3c",
    ),
    ProbabilityBin(
        0.0, "< 5 %", "#f4845f", "#a8321c", QTextCharFormat.UnderlineStyle.WaveUnderline, "#d9472b"
    ),
)


def probability_bin(prob: float) -> ProbabilityBin:
    """The scale's bin for a probability in [0, 1] (NaN counts as 0)."""
    if math.isnan(prob):
        prob = 0.0
    for band in PROBABILITY_SCALE:
        if prob >= band.low:
            return band
    return PROBABILITY_SCALE[-1]


def is_dark(palette: QPalette | None = None) -> bool:
    """True when the system asks for a dark scheme (Qt 6.5+), else judged from the window colour."""
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hints is not None else Qt.ColorScheme.Unknown
    if scheme != Qt.ColorScheme.Unknown:
        return scheme == Qt.ColorScheme.Dark
    palette = palette or QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def token_background(prob: float, dark: bool) -> QColor:
    band = probability_bin(prob)
    return QColor(band.dark if dark else band.light)


def token_format(prob: float, dark: bool) -> QTextCharFormat:
    """The character format of a reply token: background by bin, underline style as the
    non-colour cue (none, dotted, dashed, wavy from likely to unlikely)."""
    band = probability_bin(prob)
    fmt = QTextCharFormat()
    fmt.setBackground(token_background(prob, dark))
    fmt.setUnderlineStyle(band.underline)
    if band.underline != QTextCharFormat.UnderlineStyle.NoUnderline:
        fmt.setUnderlineColor(QColor("#f0f0f0" if dark else "#202020"))
    return fmt


def dark_palette() -> QPalette:
    """A neutral dark palette for the Fusion style (used when the system scheme is dark)."""
    pal = QPalette()
    base, window, text = QColor("#1e1f22"), QColor("#2b2d31"), QColor("#e6e6e6")
    pal.setColor(QPalette.ColorRole.Window, window)
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, base)
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor("#26282c"))
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, QColor("#34363b"))
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor("#34363b"))
    pal.setColor(QPalette.ColorRole.ToolTipText, text)
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor("#8b8d92"))
    pal.setColor(QPalette.ColorRole.Highlight, QColor("#3d7bd9"))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.Link, QColor("#7fb2ff"))
    pal.setColor(QPalette.ColorRole.Mid, QColor("#45474d"))
    _disabled_text(pal, QColor("#6f7278"))
    return pal


def light_palette() -> QPalette:
    pal = QPalette()
    pal.setColor(QPalette.ColorRole.Window, QColor("#f4f5f7"))
    pal.setColor(QPalette.ColorRole.WindowText, QColor("#1d1f23"))
    pal.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor("#f0f2f5"))
    pal.setColor(QPalette.ColorRole.Text, QColor("#1d1f23"))
    pal.setColor(QPalette.ColorRole.Button, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.ButtonText, QColor("#1d1f23"))
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.ToolTipText, QColor("#1d1f23"))
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor("#8a8f98"))
    pal.setColor(QPalette.ColorRole.Highlight, QColor("#2f6fd6"))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.Link, QColor("#2f6fd6"))
    pal.setColor(QPalette.ColorRole.Mid, QColor("#d5d8dd"))
    _disabled_text(pal, QColor("#a3a7ae"))
    return pal


def _disabled_text(pal: QPalette, colour: QColor) -> None:
    """Greyed text for disabled widgets (setColor without a group sets every group, which would
    make a disabled button look like an enabled one)."""
    for role in (
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.WindowText,
    ):
        pal.setColor(QPalette.ColorGroup.Disabled, role, colour)


def available_fallbacks() -> list[str]:
    """The fallback families that are installed here, in preference order."""
    installed = set(QFontDatabase.families())
    return [family for family in FALLBACK_FAMILIES if family in installed]


def mono_font() -> QFont:
    installed = set(QFontDatabase.families())
    mono = next((f for f in MONO_FAMILIES if f in installed), "monospace")
    font = QFont(mono)
    font.setFamilies([mono, *available_fallbacks()])
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font


def apply_theme(app: QApplication, dark: bool | None = None) -> bool:
    """Fusion style, the palette and style sheet for the system scheme (or `dark` when given),
    and the fallback fonts. Returns whether the dark theme was applied."""
    dark = is_dark() if dark is None else dark
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if dark else light_palette())
    base = app.font()
    base.setFamilies([base.family(), *[f for f in available_fallbacks() if f != base.family()]])
    app.setFont(base)
    app.setStyleSheet(style_sheet(dark))
    app.setProperty("tokenglassDark", dark)
    return dark


def app_is_dark() -> bool:
    app = QApplication.instance()
    value = app.property("tokenglassDark") if app is not None else None
    return bool(value) if value is not None else is_dark()


STYLE_VARS = {
    False: {
        "@bubble_user": "#e8effc",
        "@bubble_assistant": "#ffffff",
        "@border": "#d9dce1",
        "@muted": "#6b7079",
        "@accent": "#2f6fd6",
        "@error_bg": "#fdecea",
        "@error_fg": "#8a1c12",
        "@panel": "#f4f5f7",
        "@input": "#ffffff",
        "@focus": "#1f5fc8",  # the focus ring (focus_ring.py): contrast 5.2-6.0 on what is around
    },
    True: {
        "@bubble_user": "#2a3547",
        "@bubble_assistant": "#25272b",
        "@border": "#3b3e44",
        "@muted": "#9a9ea6",
        "@accent": "#5b93ea",
        "@error_bg": "#4a2020",
        "@error_fg": "#ffc9c0",
        "@panel": "#2b2d31",
        "@input": "#1e1f22",
        "@focus": "#8ab8ff",  # contrast 6.1-8.1 on the dark panels and bubbles
    },
}


def style_sheet(dark: bool) -> str:
    """assets/style.qss with its @variables replaced for the theme ("" when the file is missing)."""
    qss_path = paths.assets_dir() / "style.qss"
    if not qss_path.is_file():
        return ""
    text = qss_path.read_text(encoding="utf-8")
    # Longest names first so "@bubble_user" is not cut by a shorter prefix.
    for name, value in sorted(STYLE_VARS[dark].items(), key=lambda kv: -len(kv[0])):
        text = text.replace(name, value)
    return text


def muted_color(dark: bool) -> QColor:
    return QColor(STYLE_VARS[dark]["@muted"])


def accent_color(dark: bool) -> QColor:
    return QColor(STYLE_VARS[dark]["@accent"])
