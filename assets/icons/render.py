"""Renders assets/icon.svg into the platform icon files that sit beside this script.

Run after changing the SVG: `python assets/icons/render.py`. Uses Qt's own SVG renderer and its
ICO/ICNS image writers, so no other tool is needed. The outputs are small and committed, because
PyInstaller and the Linux .desktop entry need them at build time.
"""

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    return image


def main() -> int:
    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(HERE.parent / "icon.svg"))
    if not renderer.isValid():
        print("icon.svg does not parse", file=sys.stderr)
        return 1
    for size in (32, 64, 128, 256, 512):
        assert render(renderer, size).save(str(HERE / f"tokenglass-{size}.png"))
    assert render(renderer, 256).save(str(HERE / "tokenglass.ico"), "ICO")
    assert render(renderer, 512).save(str(HERE / "tokenglass.icns"), "ICNS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
