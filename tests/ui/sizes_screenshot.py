"""Makes assets/window-WIDTHxHEIGHT.png: the window on the default model, filling the screen (as
maximized), after one real reply, with a token of it pinned in the inspector.

Not a test. Run under Xvfb from the repository root, once per screen size:
    xvfb-run -a -s '-screen 0 800x600x24' .venv/bin/python -m tests.ui.sizes_screenshot
    xvfb-run -a -s '-screen 0 1440x900x24' .venv/bin/python -m tests.ui.sizes_screenshot

On an 800x600 screen the chats panel starts hidden (the tool bar's "Chats" shows it); on a
1440x900 one both side panels are open.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

MESSAGE = "Explain in three sentences what a tokenizer does, with one example word."


def main() -> int:
    from desktop.history import History
    from desktop.ui.app import build, engine_loader, make_application, wait_for
    from desktop.ui.settings_store import AppSettings

    app = make_application("light")
    load, list_models = engine_loader()
    history = History(Path(tempfile.mkdtemp()) / "history.sqlite3")  # this one chat in the list
    window, ui = build(load, list_models, history, AppSettings(provider="cpu"))
    window.resize(window.screen().availableGeometry().size())  # maximized, without a WM
    window.show()
    ui.models.open_model(None)
    ok, _ = wait_for(ui.models.model_ready, 120_000, (ui.models.model_failed,))
    if not ok:
        print("the default model did not load", file=sys.stderr)
        return 1
    window.settings.temperature.setValue(0.0)
    window.settings.max_new_tokens.setValue(90)
    ui.runs.send(MESSAGE)
    wait_for(ui.runs.reply_done, 300_000)
    (reply,) = [t for t in ui.transcript.turns if t.role == "assistant"]
    steps = list(reply.node.steps)
    # A token where the model hesitated, pinned in the inspector.
    index = next((i for i, s in enumerate(steps) if i >= 3 and s.prob < 0.6), 0)
    reply.widget.body.select_span(index, emit=True)
    for _ in range(30):
        app.processEvents()
    out = Path(f"assets/window-{window.width()}x{window.height()}.png")
    pixmap = window.grab()
    pixmap.save(str(out))
    print(f"{out}: {pixmap.width()}x{pixmap.height()}, {len(steps)} tokens, pinned token {index}")
    ui.lifetime.shutdown()
    history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
