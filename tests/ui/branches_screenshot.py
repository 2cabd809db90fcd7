"""Makes assets/branches.png: the window on the default model after a reply was continued from an
alternative picked in the inspector (the picked token outlined, "‹ 2/2 ›" on the reply).

Not a test. Run under Xvfb from the repository root:
    xvfb-run -a -s '-screen 0 1440x900x24' .venv/bin/python -m tests.ui.branches_screenshot

Until the engine generates with a forced prefix (`ChatModel.generate(..., forced_ids=...)`, issue
11), `ForcedPrefix` stands in for it here only: it yields the original reply's records for the
kept tokens, the original step's alternative for the picked one, then runs the engine's own loop
on the prompt followed by the forced ids (so what follows is the model's continuation of the
picked token). Once the engine has `forced_ids`, the model is used as it is.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Any

MESSAGE = "Give me three short tips for sleeping well."
OUT = Path("assets/branches.png")


class ForcedPrefix:
    """A ChatModel whose generate accepts forced_ids (see the module docstring)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.original: list = []  # the records of the reply being branched

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, messages, settings, cancel=None, forced_ids=()):
        from desktop.engine.events import GenerationDone, PromptInfo, TokenStep
        from desktop.engine.generate import LoopLimits, generate

        model = self._model
        if not forced_ids:
            yield from model.generate(messages, settings, cancel=cancel)
            return
        prompt = model.render_prompt(messages, settings.max_new_tokens)
        yield prompt
        *kept, picked = forced_ids
        forced = list(self.original[: len(kept)])
        base = self.original[len(kept)]
        rank, alt = next((r, a) for r, a in enumerate(base.top) if a.id == picked)
        forced.append(
            dataclasses.replace(
                base,
                id=alt.id,
                token=alt.token,
                text=alt.token,
                bytes=alt.bytes,
                logprob=alt.logprob,
                prob=alt.prob,
                sampling_prob=alt.sampling_prob,
                rank=rank,
            )
        )
        yield from forced
        longer = PromptInfo(
            prompt.prompt_text,
            tuple(prompt.prompt_ids) + tuple(forced_ids),
            prompt.dropped_messages,
            prompt.context_size,
        )
        limits = LoopLimits(
            eos_ids=model.manifest.eos_ids,
            max_positions=model.context_size,
            provider=model.provider.name,
        )
        with model._lock:  # the engine's own loop, as ChatModel.generate runs it
            for record in generate(
                model._stepper, model.tokenizer, longer, settings, limits, cancel
            ):
                if isinstance(record, TokenStep):
                    yield dataclasses.replace(record, index=record.index + len(forced))
                elif isinstance(record, GenerationDone):
                    yield dataclasses.replace(
                        record,
                        text="".join(s.text for s in forced) + record.text,
                        completion_tokens=record.completion_tokens + len(forced),
                    )


def main() -> int:
    from desktop.engine.chat import ChatModel
    from desktop.ui.app import build, engine_loader, make_application, wait_for
    from desktop.ui.settings_store import AppSettings

    app = make_application("light")
    load, list_models = engine_loader()
    native = "forced_ids" in inspect.signature(ChatModel.generate).parameters
    wrapped: list[ForcedPrefix] = []

    def load_forced(name, provider):
        model = load(name, provider)
        if native:
            return model
        wrapped.append(ForcedPrefix(model))
        return wrapped[-1]

    window, ui = build(load_forced, list_models, None, AppSettings(provider="cpu"))
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
    if wrapped:
        wrapped[-1].original = steps
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
        f"version {branch.widget.versions.label.text()}, native forced_ids: {native}"
    )
    ui.lifetime.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
