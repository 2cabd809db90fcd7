"""Entry point: `tokenglass` opens the window; `tokenglass SUBCOMMAND ...` runs the headless CLI.

`tokenglass --self-test` starts the GUI offscreen, chats once with the default model and exits 0
(non-zero with the reason on failure); it is what the packaged app is checked with. Without a
desktop session (no display on Linux), the window is not tried: one line and exit 2 (case I12).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from desktop import cli

    if argv[:1] in (["-h"], ["--help"]):  # the CLI's commands, then the window's options
        from desktop.ui.app import window_options_help  # argparse only; Qt is not imported

        cli.escape_what_stdout_cannot_carry()
        try:
            cli.build_parser().print_help()
            print("\n" + window_options_help(), flush=True)
        except BrokenPipeError:  # e.g. `tokenglass --help | head`
            cli.silence_stdout()
            return 141
        return 0
    if argv and (argv[0] in cli.SUBCOMMANDS or argv[0] in ("-h", "--help", "--version")):
        return cli.main(argv)
    if "--self-test" not in argv and (reason := no_display(os.environ, sys.platform)):
        print(f"tokenglass: {reason}", file=sys.stderr)
        return 2
    from desktop.ui.app import main as gui_main  # Qt is imported only on this path

    return gui_main(argv)


# Qt platform plugins that draw without a desktop session (QT_QPA_PLATFORM's first name)
HEADLESS_PLATFORMS = (
    "offscreen",
    "minimal",
    "minimalegl",
    "vnc",
    "eglfs",
    "linuxfb",
    "vkkhrdisplay",
)


def no_display(env: Mapping[str, str], platform: str) -> str | None:
    """Why the window cannot open, or None (case I12). On Linux and the BSDs a window needs
    DISPLAY (X11) or WAYLAND_DISPLAY, unless QT_QPA_PLATFORM names a plugin that needs neither;
    without them Qt aborts (exit 134) advising to reinstall its xcb plugin. Windows and macOS
    always have their own platform plugin."""
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    chosen = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen in HEADLESS_PLATFORMS or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no desktop session found (DISPLAY and WAYLAND_DISPLAY are not set), so the window "
        "cannot open; `tokenglass chat` works in a terminal."
    )


if __name__ == "__main__":
    sys.exit(main())
