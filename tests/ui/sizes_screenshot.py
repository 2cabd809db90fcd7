"""Makes assets/window-WIDTHxHEIGHT.png: the window on the default model, filling the screen (as
maximized), after one real reply, with a token of it pinned in the inspector.

Not a test. Run under Xvfb from the repository root, once per screen size:
    xvfb-run -a -s '-screen 0 800x600x24' .venv/bin/python -m tests.ui.sizes_screenshot
    xvfb-run -a -s '-screen 0 1440x900x24' .venv/bin/python -m tests.ui.sizes_screenshot
README's first screenshot (a sampled reply, the message shown as its tokens, a token the sampler
drew at rank 2 pinned):
    xvfb-run -a -s '-screen 0 1440x900x24' .venv/bin/python -m tests.ui.sizes_screenshot \
        --message "Write one short sentence about the moon 🌙 (月, 달)." --seed 42 --sample \
        --user-tokens --pin-rank 1 --out assets/screenshot.png

On an 800x600 screen the chats panel starts hidden (the tool bar's "Chats" shows it); on a
1440x900 one both side panels are open.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

MESSAGE = "Explain in three sentences what a tokenizer does, with one example word."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ui.sizes_screenshot")
    parser.add_argument("--message", default=MESSAGE)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--sample", action="store_true", help="the model's sampling, not greedy")
    parser.add_argument("--user-tokens", action="store_true", help="the message as its tokens")
    parser.add_argument("--pin-rank", type=int, default=None, help="pin a token of this rank")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
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
    if not args.sample:
        window.settings.temperature.setValue(0.0)
    if args.seed is not None:
        window.settings.seed.setValue(args.seed)
    window.settings.max_new_tokens.setValue(90)
    ui.runs.send(args.message)
    wait_for(ui.runs.reply_done, 300_000)
    (user,) = [t for t in ui.transcript.turns if t.role == "user"]
    (reply,) = [t for t in ui.transcript.turns if t.role == "assistant"]
    if args.user_tokens:
        user.widget.mode_buttons["tokens"].click()
    steps = list(reply.node.steps)
    if args.pin_rank is not None:  # a token the sampler drew at this rank
        index = next((i for i, s in enumerate(steps) if s.rank == args.pin_rank), 0)
    else:  # a token where the model hesitated
        index = next((i for i, s in enumerate(steps) if i >= 3 and s.prob < 0.6), 0)
    reply.widget.body.select_span(index, emit=True)
    for _ in range(30):
        app.processEvents()
    out = args.out or Path(f"assets/window-{window.width()}x{window.height()}.png")
    pixmap = window.grab()
    pixmap.save(str(out))
    print(f"{out}: {pixmap.width()}x{pixmap.height()}, {len(steps)} tokens, pinned token {index}")
    ui.lifetime.shutdown()
    history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
