"""Entry point: `tokenglass` opens the window; `tokenglass SUBCOMMAND ...` runs the headless CLI.

`tokenglass --self-test` starts the GUI offscreen, chats once with the default model and exits 0
(non-zero with the reason on failure); it is what the packaged app is checked with.
"""

from __future__ import annotations

import sys


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
    from desktop.ui.app import main as gui_main  # Qt is imported only on this path

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
