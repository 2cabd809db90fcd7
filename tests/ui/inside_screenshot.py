"""Makes assets/attention.png (not a test): the window with one greedy reply, a token of it
selected and the Attention tab raised (or the Layers tab, with `--layers`; `--sink` leaves the
first token out of the colour scale).

Run under a virtual display, from the repository root, with a user folder whose models/ holds a
model folder with a probe graph (`tokenglass-export default` writes the default model's):

    TOKENGLASS_HOME=/work/wt/h16ui-home xvfb-run -a -s '-screen 0 1440x900x24' \\
        .venv/bin/python -m tests.ui.inside_screenshot OUT.png [MODEL] [PROMPT] [INDEX] \\
        [--layers] [--sink]
"""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt, QTimer

from desktop import paths
from desktop.history import History
from desktop.ui import settings_store
from desktop.ui.app import build, engine_loader, make_application


def main(out: str, model: str | None, prompt: str, index: int, flags: set[str]) -> int:
    app = make_application("light")
    load, list_models = engine_loader()
    saved = paths.home() / "inside-screenshot.sqlite3"
    saved.unlink(missing_ok=True)  # one chat in the list: this one
    history = History(saved)
    window, ui = build(load, list_models, history, settings_store.load())
    window.resize(1440, 900)
    window.show()
    window.resizeDocks([window.attention_dock], [620], Qt.Orientation.Horizontal)

    def loaded(_model) -> None:
        window.settings.max_new_tokens.setValue(24)
        window.settings.temperature.setValue(0.0)
        window.chat.input.setPlainText(prompt)
        ui.runs.send()

    def replied(_done) -> None:
        (window.layers_dock if "--layers" in flags else window.attention_dock).raise_()
        turn = ui.transcript.turns[-1]
        turn.widget.body.select_span(min(index, len(turn.widget.steps) - 1), emit=True)

    def shown(_result) -> None:
        window.attention.sink.setChecked("--sink" in flags)
        QTimer.singleShot(600, shoot)

    def shoot() -> None:
        window.grab().save(out)
        ui.lifetime.shutdown()
        history.close()
        app.quit()

    def failed(message: str) -> None:
        print(message, file=sys.stderr)
        app.quit()

    ui.models.model_ready.connect(loaded)
    ui.runs.reply_done.connect(replied)
    ui.inside.shown.connect(shown)
    ui.inside.failed.connect(failed)
    ui.models.model_failed.connect(failed)
    ui.models.open_model(model)
    app.exec()
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    sys.exit(
        main(
            args[0],
            (args[1] or None) if len(args) > 1 else None,
            args[2] if len(args) > 2 else "What is the capital of France?",
            int(args[3]) if len(args) > 3 else 5,
            {a for a in sys.argv[1:] if a.startswith("--")},
        )
    )
