"""The one place that builds and wires the GUI's objects: QApplication, theme, window, controller,
history, settings and the engine's model loader. Also `--self-test` (used on the packaged app):
start offscreen, load the default model, send one message, wait for a streamed reply with token
probabilities, tokenize "héllo 😀", then load the bundled dates model (an encoder-decoder) and check
that it turns "3rd of March 2021" into "2021-03-03"; print one summary line, exit 0 (or non-zero
with the reason).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SELF_TEST_MESSAGE = "Say hello in five words."
SELF_TEST_TEXT = "héllo 😀"
SELF_TEST_DATE = ("3rd of March 2021", "2021-03-03")


def window_parser() -> argparse.ArgumentParser:
    """The window's options (`tokenglass [options]`, no subcommand)."""
    parser = argparse.ArgumentParser(prog="tokenglass", description="Open the Tokenglass window.")
    parser.add_argument(
        "--model",
        help="model name or folder (default: the last one used; the default model if it is gone)",
    )
    parser.add_argument(
        "--provider", choices=("auto", "cpu", "cuda", "dml", "coreml"), help="execution provider"
    )
    parser.add_argument(
        "--theme", choices=("system", "light", "dark"), default="system", help="colour theme"
    )
    parser.add_argument("--self-test", action="store_true", help="chat once offscreen and exit")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    return window_parser().parse_args(list(argv))


def window_options_help() -> str:
    """The window's options as help text, for `tokenglass --help` (which lists the CLI)."""
    text = window_parser().format_help()
    lines = text[text.index("options:") :].splitlines()[1:]
    lines = [line for line in lines if not line.lstrip().startswith("-h, --help")]
    return "Without a subcommand, tokenglass opens the window. Its options:\n" + "\n".join(lines)


def engine_loader() -> tuple[Callable[[str | None, str], Any], Callable[[], Sequence[Any]]]:
    """The real engine's (load, list_models): load(name_or_folder_or_None, provider)."""
    from desktop.engine import catalog, chat

    def load(name_or_path: str | None, provider: str) -> Any:
        return chat.load_model(catalog.resolve_model(name_or_path), provider=provider)

    return load, catalog.list_models


def build(
    load_model: Callable[[str | None, str], Any],
    list_models: Callable[[], Sequence[Any]] | None = None,
    history: Any | None = None,
    settings: Any | None = None,
    settings_path: Path | None = None,
):
    """Builds the window and its controller (a QApplication must exist).

    Returns (window, controller)."""
    from desktop.ui.controller import ChatController
    from desktop.ui.main_window import MainWindow

    window = MainWindow()
    controller = ChatController(
        window,
        load_model,
        list_models=list_models,
        history=history,
        settings=settings,
        settings_path=settings_path,
    )
    return window, controller


def make_application(theme_choice: str = "system"):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from desktop import paths
    from desktop.ui import theme

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication([sys.argv[0]])
    app.setApplicationName("Tokenglass")
    app.setOrganizationName("Tokenglass")
    icon = paths.assets_dir() / "icon.svg"
    if icon.is_file():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    dark = None if theme_choice == "system" else theme_choice == "dark"
    theme.apply_theme(app, dark)
    if theme_choice == "system":
        hints = QGuiApplication.styleHints()
        hints.colorSchemeChanged.connect(app_theme_follower(app))
    return app


def app_theme_follower(app):
    """A slot that re-applies the theme when the system switches light/dark."""
    from desktop.ui import theme

    def follow(_scheme) -> None:
        theme.apply_theme(app)

    return follow


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.self_test:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return self_test(args)
    from desktop.engine.errors import EngineError
    from desktop.history import History
    from desktop.ui import settings_store

    app = make_application(args.theme)
    settings = settings_store.load()
    if args.provider:
        settings.provider = args.provider
    try:
        history = History()
    except EngineError as err:
        logging.getLogger(__name__).error("history unavailable: %s", err)
        history = None
    load, list_models = engine_loader()
    window, controller = build(load, list_models, history, settings)
    window.show()
    controller.open_model(args.model or settings.model, fallback_to_default=True)
    quit_on_interrupt(app, window)
    code = app.exec()
    if history is not None:
        history.close()
    return code


def quit_on_interrupt(app, window) -> None:
    """Ctrl+C in the terminal closes the window (Python handles signals only between Qt events,
    so a timer hands control back to the interpreter a few times a second)."""
    import signal

    from PySide6.QtCore import QTimer

    signal.signal(signal.SIGINT, lambda *_: window.close())
    timer = QTimer(app)
    timer.setInterval(250)
    timer.timeout.connect(_do_nothing)
    timer.start()


def _do_nothing() -> None:
    """Lets the interpreter run (and deliver pending signals)."""


def wait_for(signal, timeout_ms: int, stop_on=()) -> tuple[bool, list[Any]]:
    """Runs the event loop until `signal` fires, one of `stop_on` fires, or the timeout;
    returns (whether `signal` fired, its arguments)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    got: list[Any] = []
    fired = [False]

    def on_signal(*values) -> None:
        fired[0] = True
        got.extend(values)
        loop.quit()

    def on_stop(*_values) -> None:
        loop.quit()

    signal.connect(on_signal)
    for other in stop_on:
        other.connect(on_stop)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    signal.disconnect(on_signal)
    for other in stop_on:
        other.disconnect(on_stop)
    return fired[0], got


def self_test(args: argparse.Namespace) -> int:
    """See the module docstring. Uses a temporary settings file and no history database."""
    from desktop.ui.settings_store import AppSettings

    app = make_application("light")
    load, list_models = engine_loader()
    with tempfile.TemporaryDirectory() as tmp:
        settings = AppSettings(provider=args.provider or "auto")
        window, controller = build(load, list_models, None, settings, Path(tmp) / "settings.json")
        try:
            code, line = _self_test_steps(window, controller, args.model)
        finally:
            window.close()  # stops the worker and waits for any model load (controller.shutdown)
            controller.shutdown()  # also when a reply still runs (close then waits for it)
            window.deleteLater()
            app.processEvents()
    print(line)
    return code


def _self_test_steps(window, controller, model_arg: str | None) -> tuple[int, str]:
    """Load, send one message, check the streamed reply and a tokenization; (exit code, line)."""
    errors: list[str] = []
    controller.error_shown.connect(errors.append)
    controller.open_model(model_arg)
    ok, loaded = wait_for(controller.model_ready, 300_000, (controller.model_failed,))
    if not ok:
        return 2, f"self-test FAILED: model did not load: {' '.join(errors) or 'timeout'}"
    model = loaded[0]
    window.settings.max_new_tokens.setValue(12)
    window.settings.seed.setValue(7)
    controller.send(SELF_TEST_MESSAGE)
    ok, values = wait_for(controller.reply_done, 300_000)
    done = values[0] if values else None
    steps = controller.turns[-1].steps if controller.turns else []
    failures: list[str] = []
    if not ok or done is None:
        failures.append(f"no reply ({' '.join(errors) or 'timeout'})")
    elif done.error:
        failures.append(f"reply failed: {done.error}")
    elif not steps or not all(0.0 < s.prob <= 1.0 and s.top for s in steps):
        failures.append("reply tokens lack probabilities")
    pieces = model.tokenize(SELF_TEST_TEXT)
    joined = b"".join(p.bytes for p in pieces if not p.special)
    if joined != SELF_TEST_TEXT.encode("utf-8"):
        failures.append(f"tokenize {SELF_TEST_TEXT!r} gave bytes {joined!r}")
    if failures:
        return 1, "self-test FAILED: " + "; ".join(failures)
    dates_ok, dates_line = _self_test_dates(controller, errors)
    if not dates_ok:
        return 1, "self-test FAILED: " + dates_line
    return 0, (
        f"self-test ok: model {model.name} on {done.provider}, {len(steps)} tokens streamed "
        f"(first p={steps[0].prob:.3f}), TTFT {done.ttft_ms:.0f} ms, "
        f"{done.decode_tokens_per_s:.1f} tokens/s, {SELF_TEST_TEXT!r} -> {len(pieces)} tokens; "
        + dates_line
    )


def _self_test_dates(controller, errors: list[str]) -> tuple[bool, str]:
    """Open the bundled dates model (encoder-decoder), send one date in a new chat, check the
    reply is its ISO date; (ok, the part of the summary line that says so)."""
    from desktop.paths import DATES_MODEL_NAME

    errors.clear()
    controller.open_model(DATES_MODEL_NAME)
    ok, loaded = wait_for(controller.model_ready, 300_000, (controller.model_failed,))
    if not ok:
        return False, f"dates model did not load: {' '.join(errors) or 'timeout'}"
    controller.new_chat()
    text, want = SELF_TEST_DATE
    controller.send(text)
    ok, values = wait_for(controller.reply_done, 300_000)
    done = values[0] if values else None
    if not ok or done is None or done.error:
        return False, f"dates model gave no reply ({(done and done.error) or ' '.join(errors)})"
    steps = controller.turns[-1].steps if controller.turns else []
    if done.text != want:
        return False, f"dates model answered {done.text!r} to {text!r} (expected {want!r})"
    least = min(s.prob for s in steps)
    return True, f"{loaded[0].name}: {text!r} -> {done.text!r} (lowest p={least:.3f})"
