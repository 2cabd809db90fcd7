"""Makes assets/pipeline.png (not a test): the window on the default model, one sampled reply,
the Pipeline tab raised, the token drawn from furthest down its funnel pinned.

Run under a virtual display, from the repository root, with a user folder whose models/ holds the
default model (a symlink will do) so that no saved chat shows up:

    TOKENGLASS_HOME=/tmp/tg xvfb-run -a -s "-screen 0 1400x950x24" \\
        .venv/bin/python -m tests.ui.pipeline_screenshot assets/pipeline.png
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer

from desktop import paths
from desktop.history import History
from desktop.ui import settings_store
from desktop.ui.app import build, engine_loader, make_application

PROMPT = "Give me three ideas for a weekend trip."


def pinned_index(steps) -> int:
    """The token drawn at the lowest place among the most candidates (the widest funnel)."""
    return max(range(len(steps)), key=lambda i: (steps[i].sampler[-1].rank or 0, i))


def main(out: str) -> int:
    app = make_application("light")
    load, list_models = engine_loader()
    history = History(paths.home() / "pipeline-screenshot.sqlite3")
    window, controller = build(load, list_models, history, settings_store.load())
    window.resize(1360, 900)
    window.show()

    def loaded(_model) -> None:
        s = window.settings
        s.max_new_tokens.setValue(40)
        s.seed.setValue(7)
        s.temperature.setValue(0.8)
        s.top_k.setValue(40)
        s.top_p.setValue(0.95)
        s.min_p.setValue(0.05)
        window.chat.input.setPlainText(PROMPT)
        controller.send()

    def replied(_done) -> None:
        turn = controller.turns[-1]
        index = pinned_index(turn.widget.steps)
        turn.widget.body.select_span(index)
        turn.widget.token_selected.emit(index)
        window.pipeline_dock.raise_()
        QTimer.singleShot(500, shoot)

    def shoot() -> None:
        window.grab().save(out)
        controller.shutdown()
        history.close()
        app.quit()

    controller.model_ready.connect(loaded)
    controller.reply_done.connect(replied)
    controller.model_failed.connect(lambda message: (print(message, file=sys.stderr), app.quit()))
    controller.open_model(None)
    app.exec()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
