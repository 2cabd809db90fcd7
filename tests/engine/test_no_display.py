"""I12: `tokenglass` (the window) started without a display says so in one line and exits 2,
instead of Qt's abort (exit 134) advising to reinstall a library. Real subprocesses with a cleared
environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.__main__ import no_display

REPO_ROOT = Path(__file__).resolve().parents[2]


def tokenglass(*args: str, **env: str) -> subprocess.CompletedProcess:
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "TOKENGLASS_HOME") if k in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "desktop", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, env={**keep, **env}, timeout=120,
        check=False,
    )  # fmt: skip


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the X11/Wayland case")
@pytest.mark.parametrize("env", [{}, {"QT_QPA_PLATFORM": "xcb"}, {"QT_QPA_PLATFORM": "wayland"}])
def test_window_without_a_display_is_one_line_and_exit_2(env):
    result = tokenglass(**env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("tokenglass: no desktop session found")
    assert "`tokenglass chat` works in a terminal" in line


def test_the_terminal_commands_still_run_without_a_display():
    result = tokenglass("--version")
    assert result.returncode == 0 and result.stdout.startswith("tokenglass ")
    result = tokenglass("models")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("env", "platform", "refused"),
    [
        ({}, "linux", True),
        ({"DISPLAY": ":0"}, "linux", False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"QT_QPA_PLATFORM": "vnc:size=800x600"}, "linux", False),
        ({"QT_QPA_PLATFORM": "minimal"}, "freebsd14", False),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux", True),
        ({}, "win32", False),
        ({}, "darwin", False),
    ],
)
def test_no_display_rule(env, platform, refused):
    assert (no_display(env, platform) is not None) is refused
