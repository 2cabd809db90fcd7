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
from dataclasses import dataclass
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


@dataclass
class WindowControllers:
    """The window's controllers, one per job, as `build` wired them (kept together for the app's
    entry, the self-test and tests; no controller is handed this bundle)."""

    session: Any
    feedback: Any
    models: Any
    transcript: Any
    runs: Any
    inspector: Any
    inside: Any
    editing: Any
    token_views: Any
    chats: Any
    lifetime: Any
    server: Any
    chat_menu: Any = None  # export and copy of a saved chat (chat_menu.py)
    actions: Any = None  # Regenerate, Edit last, Copy last reply: enabled or why not
    model_notice: Any = None  # a saved chat made with another model says so
    chat_settings: Any = None


def build(
    load_model: Callable[[str | None, str], Any],
    list_models: Callable[[], Sequence[Any]] | None = None,
    history: Any | None = None,
    settings: Any | None = None,
    settings_path: Path | None = None,
) -> tuple[Any, WindowControllers]:
    """Builds the window and its controllers and wires them (a QApplication must exist).

    history: a `History` (saved through a `TreeStore`) or None (nothing is saved).
    Returns (window, controllers)."""
    from desktop.chat_service import ChatService
    from desktop.ui.actions_state import ActionsController
    from desktop.ui.chat_list_controller import ChatListController
    from desktop.ui.chat_menu import ChatMenuController
    from desktop.ui.chat_settings import ChatSettingsController
    from desktop.ui.edit_controller import EditController
    from desktop.ui.feedback import Feedback
    from desktop.ui.inside_controller import InsideController
    from desktop.ui.inspector_controller import InspectorController
    from desktop.ui.lifetime import Lifetime
    from desktop.ui.local_server import LocalServerSwitch
    from desktop.ui.main_window import MainWindow
    from desktop.ui.model_controller import ModelController
    from desktop.ui.model_notice import ModelNotice
    from desktop.ui.reading_controller import ReadingController
    from desktop.ui.run_controller import RunController
    from desktop.ui.session import ChatSession
    from desktop.ui.settings_store import AppSettings
    from desktop.ui.store import TreeStore
    from desktop.ui.token_count import TokenCount
    from desktop.ui.token_views import TokenViewController
    from desktop.ui.transcript import TranscriptController

    window = MainWindow()
    service = ChatService()
    session = ChatSession(window)
    feedback = Feedback(window)
    runs_busy: list[Callable[[], bool]] = []  # the run controller is made after its users

    def busy() -> bool:
        return bool(runs_busy) and runs_busy[0]()

    models = ModelController(
        window,
        service,
        feedback,
        load_model,
        list_models,
        settings or AppSettings(),
        settings_path,
        busy,
    )
    transcript = TranscriptController(window, session, feedback, busy)
    transcript.context_used.connect(models.show_context)
    runs = RunController(window, service, models, transcript, feedback)
    runs_busy.append(lambda: runs.busy)
    feedback.end_on("stopping", runs.idle)  # status lines go when they stop being true
    feedback.end_on("error", runs.run_started, session.replaced)
    actions = ActionsController(window, transcript, models, busy)  # what Regenerate... can do
    runs.sync_actions = actions.sync
    inspector = InspectorController(
        window, transcript, runs.branch, lambda user, mode: token_views.reveal(user, mode)
    )
    runs.run_started.connect(inspector.run_started)
    inside = InsideController(window, lambda: models.model)  # the Attention and Layers views
    inspector.token_shown.connect(inside.token_shown)
    inspector.cleared.connect(inside.reset)
    models.model_ready.connect(inside.model_changed)
    window.closing.connect(inside.shutdown)
    editing = EditController(window, session, transcript, feedback, busy)
    runs.take_edit, runs.cancel_edit = editing.take, editing.cancel
    editing.send = runs.send  # the editor's Send
    token_views = TokenViewController(transcript, lambda: models.model, feedback)
    store = TreeStore(history) if history is not None else None
    chats = ChatListController(window, session, store, feedback, runs.abandon)
    runs.user_sent.connect(chats.user_sent)
    runs.reply_finished.connect(chats.reply_finished)
    runs.saver = chats.reply_saver
    runs.user_refused.connect(chats.user_refused)
    chat_settings = ChatSettingsController(window, session, models, store, feedback)
    runs.settle = chat_settings.settle
    transcript.version_switched.connect(chats.version_switched)
    session.replaced.connect(lambda _c: inspector.reset())
    session.replaced.connect(lambda _c: runs.sync_buttons())
    models.model_ready.connect(lambda _m: transcript.refresh_context())
    server = LocalServerSwitch(service, history)  # port 8080 on 127.0.0.1, off until checked
    window.settings.layout().addWidget(server)
    server.status_message.connect(window.statusBar().showMessage)
    lifetime = Lifetime(window, runs, models, service, server)
    chat_menu = ChatMenuController(window, store, feedback)
    model_notice = ModelNotice(window, session, models, feedback, list_models)
    # issue 15's reading aids: Tokens | Text, surprisal on tokens, the chart of an opened chat
    ReadingController(window, transcript, inspector, models, session)
    counter = TokenCount(window.chat.input, window.chat.count_label, lambda: models.model)
    transcript.context_used.connect(counter.set_used)
    models.model_ready.connect(lambda _m: counter.refresh())
    keyboard_and_screen_readers(window)
    actions.sync()  # the tooltips of Regenerate, Edit last and Copy last reply are its own
    return window, WindowControllers(
        session,
        feedback,
        models,
        transcript,
        runs,
        inspector,
        inside,
        editing,
        token_views,
        chats,
        lifetime,
        server,
        chat_menu,
        actions,
        model_notice,
        chat_settings,
    )


def keyboard_and_screen_readers(window: Any) -> None:
    """The window's shortcuts and Help list, focus order, focus ring and accessible texts (after
    every control is in place)."""
    from desktop.ui import accessibility, shortcuts
    from desktop.ui.focus_order import FocusOrder
    from desktop.ui.focus_ring import FocusRing

    shortcuts.install(window)
    accessibility.describe(window)
    window.focus_order = FocusOrder(window)
    window.focus_ring = FocusRing(window)


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
    window, controllers = build(load, list_models, history, settings)
    window.fit_to_screen()
    window.show()
    controllers.models.open_model(args.model or settings.model, fallback_to_default=True)
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
        window, ui = build(load, list_models, None, settings, Path(tmp) / "settings.json")
        try:
            code, line = _self_test_steps(window, ui, args.model)
        finally:
            window.close()  # stops the worker and waits for any model load (lifetime.shutdown)
            ui.lifetime.shutdown()  # also when a reply still runs (close then waits for it)
            window.deleteLater()
            app.processEvents()
    print(line)
    return code


def _self_test_steps(window, ui: WindowControllers, model_arg: str | None) -> tuple[int, str]:
    """Load, send one message, check the streamed reply and a tokenization; (exit code, line)."""
    errors: list[str] = []
    ui.feedback.error_shown.connect(errors.append)
    ui.models.open_model(model_arg)
    ok, loaded = wait_for(ui.models.model_ready, 300_000, (ui.models.model_failed,))
    if not ok:
        return 2, f"self-test FAILED: model did not load: {' '.join(errors) or 'timeout'}"
    model = loaded[0]
    window.settings.max_new_tokens.setValue(12)
    window.settings.seed.setValue(7)
    ui.runs.send(SELF_TEST_MESSAGE)
    ok, values = wait_for(ui.runs.reply_done, 300_000)
    done = values[0] if values else None
    turns = ui.transcript.turns
    steps = turns[-1].steps if turns else []
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
    dates_ok, dates_line = _self_test_dates(ui, errors)
    if not dates_ok:
        return 1, "self-test FAILED: " + dates_line
    return 0, (
        f"self-test ok: model {model.name} on {done.provider}, {len(steps)} tokens streamed "
        f"(first p={steps[0].prob:.3f}), TTFT {done.ttft_ms:.0f} ms, "
        f"{done.decode_tokens_per_s:.1f} tokens/s, {SELF_TEST_TEXT!r} -> {len(pieces)} tokens; "
        + dates_line
    )


def _self_test_dates(ui: WindowControllers, errors: list[str]) -> tuple[bool, str]:
    """Open the bundled dates model (encoder-decoder), send one date in a new chat, check the
    reply is its ISO date; (ok, the part of the summary line that says so)."""
    from desktop.paths import DATES_MODEL_NAME

    errors.clear()
    ui.models.open_model(DATES_MODEL_NAME)
    ok, loaded = wait_for(ui.models.model_ready, 300_000, (ui.models.model_failed,))
    if not ok:
        return False, f"dates model did not load: {' '.join(errors) or 'timeout'}"
    ui.chats.new_chat()
    text, want = SELF_TEST_DATE
    ui.runs.send(text)
    ok, values = wait_for(ui.runs.reply_done, 300_000)
    done = values[0] if values else None
    if not ok or done is None or done.error:
        return False, f"dates model gave no reply ({(done and done.error) or ' '.join(errors)})"
    turns = ui.transcript.turns
    steps = turns[-1].steps if turns else []
    if done.text != want:
        return False, f"dates model answered {done.text!r} to {text!r} (expected {want!r})"
    least = min(s.prob for s in steps)
    return True, f"{loaded[0].name}: {text!r} -> {done.text!r} (lowest p={least:.3f})"
