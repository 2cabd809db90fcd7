"""Makes assets/branches.png: the window on the default model after a reply was continued from an
alternative picked in the inspector (the picked token outlined, "‹ 2/2 ›" on the reply).

Not a test. Run under Xvfb from the repository root:
    xvfb-run -a -s '-screen 0 1440x900x24' .venv/bin/python -m tests.ui.branches_screenshot

The branch runs on the engine's own forced-prefix generation
(`ChatModel.generate(..., forced_ids=...)`), as in the app.
"""

from __future__ import annotations

import sys
from pathlib import Path

MESSAGE = "Give me three short tips for sleeping well."
OUT = Path("assets/branches.png")


def main() -> int:
    from desktop.ui.app import build, engine_loader, make_application, wait_for
    from desktop.ui.settings_store import AppSettings

    app = make_application("light")
    load, list_models = engine_loader()
    window, ui = build(load, list_models, None, AppSettings(provider="cpu"))
    window.resize(1440, 900)
    window.show()
    ui.models.open_model(None)
    ok, _ = wait_for(ui.models.model_ready, 120_000, (ui.models.model_failed,))
    if not ok:
        print("the default model did not load", file=sys.stderr)
        return 1
    window.settings.temperature.setValue(0.0)
    window.settings.max_new_tokens.setValue(60)
    ui.runs.send(MESSAGE)
    wait_for(ui.runs.reply_done, 120_000)
    (row,) = [t for t in ui.transcript.turns if t.role == "assistant"]
    steps = list(row.node.steps)
    # An early token where the model hesitated: continue from its second choice.
    index = next(i for i, s in enumerate(steps) if i >= 3 and len(s.top) > 1 and s.prob < 0.7)
    row.widget.body.select_span(index, emit=True)
    alternative = next(a for a in steps[index].top if a.id != steps[index].id)
    ui.inspector._continue(alternative.id)  # what a click on its row in the inspector does
    wait_for(ui.runs.reply_done, 120_000)
    (branch,) = [t for t in ui.transcript.turns if t.role == "assistant"]
    branch.widget.body.select_span(index, emit=True)  # the picked token, pinned in the inspector
    for _ in range(20):
        app.processEvents()
    pixmap = window.grab()
    pixmap.save(str(OUT))
    print(
        f"{OUT}: {pixmap.width()}x{pixmap.height()}, branched at token {index} "
        f"({steps[index].token!r} -> {alternative.token!r}), "
        f"version {branch.widget.versions.label.text()}"
    )
    ui.lifetime.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
