"""How soon a branch shows its next token: continue a ~300-token chat from token 5 of its last
reply with the step's second alternative, on the default model (or --model DIR).

Each run first generates the original reply (so the KV cache holds the chat, as after any reply in
the window), then times ChatModel.generate(..., forced_ids=...) from the call to the first sampled
(not forced) token. Peers, in the same runs: a Regenerate of the same reply (the prompt comes from
the cache but its last token, then the first token: the existing prefix-caching path), one decode
step, and the same branch on a model whose cache was emptied first (a fresh process, another
conversation in between). Medians are printed, with how far the forced records and the picked
token's logprob are from the original's. On a shared machine, read the ratios.

    .venv/bin/python -m tests.benchmarks.branch [--runs 7] [--threads 2] [--model DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time

from desktop import paths
from desktop.engine.chat import load_model
from desktop.engine.events import GenerationSettings, Message, TokenStep

TOPIC = (
    "Tell me about the history of the city of Paris, from the first settlement on the Ile de la "
    "Cite through the Roman town of Lutetia, the medieval capital, the Revolution, Haussmann's "
    "rebuilding and the twentieth century. "
)


def branch_time(model, chat, settings, forced) -> tuple[float, list[TokenStep]]:
    """Seconds from the call to the first sampled token, and the records up to it."""
    started = time.perf_counter()
    steps: list[TokenStep] = []
    for record in model.generate(chat, settings, forced_ids=forced):
        if isinstance(record, TokenStep):
            steps.append(record)
            if not record.forced:
                return time.perf_counter() - started, steps
    raise RuntimeError("the branch ended before a sampled token")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(paths.default_model_dir()))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--index", type=int, default=5)
    args = parser.parse_args()
    model = load_model(args.model, provider="cpu", threads=args.threads)
    chat = [Message("user", TOPIC * 4)]
    original_settings = GenerationSettings(temperature=0.0, max_new_tokens=110, top_logprobs=10)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=8, top_logprobs=10)
    warm, cold, regen, step, record_diff, picked_diff = [], [], [], [], 0.0, 0.0
    prompt_tokens = reply_tokens = reused = 0
    for _ in range(args.runs):
        original = [
            r
            for r in model.generate(chat, original_settings)
            if isinstance(r, TokenStep)  # the cache now holds the chat and this reply
        ]
        prompt_tokens = len(model.render_prompt(chat).prompt_ids)
        reply_tokens = len(original)
        started = time.perf_counter()  # a Regenerate: its first token, from the same cache
        next(r for r in model.generate(chat, settings) if isinstance(r, TokenStep))
        regen.append(time.perf_counter() - started)
        started = time.perf_counter()
        model._stepper.step(original[0].id)
        step.append(time.perf_counter() - started)
        for _ in model.generate(chat, original_settings):  # back to the state after the reply
            pass
        alt = next(a for a in original[args.index].top if a.id != original[args.index].id)
        forced = (*(s.id for s in original[: args.index]), alt.id)
        seconds, steps = branch_time(model, chat, settings, forced)
        reused = model._stepper.reused
        warm.append(seconds)
        for got, want in zip(steps[: args.index], original, strict=False):
            record_diff = max(record_diff, abs(got.logprob - want.logprob))
        picked_diff = max(picked_diff, abs(steps[args.index].logprob - alt.logprob))
        model._stepper.forget()  # as after another conversation or in a fresh process
        cold.append(branch_time(model, chat, settings, forced)[0])
    print(
        f"chat: {prompt_tokens} prompt tokens + {reply_tokens}-token reply; branch at token "
        f"{args.index}; {reused} prompt tokens kept from the cache"
    )
    print(
        f"next token after the branch: {statistics.median(warm) * 1000:.0f} ms with the cache, "
        f"{statistics.median(cold) * 1000:.0f} ms from an empty cache (medians of {args.runs}; "
        f"runs {', '.join(f'{s * 1000:.0f}' for s in warm)} ms)"
    )
    ms = {k: statistics.median(v) * 1000 for k, v in {"regen": regen, "step": step}.items()}
    branch_ms = statistics.median(warm) * 1000
    print(
        f"peers: a Regenerate's first token {ms['regen']:.0f} ms, one decode step "
        f"{ms['step']:.0f} ms; the branch = {branch_ms / ms['regen']:.2f}x the Regenerate, "
        f"{branch_ms / ms['step']:.2f} decode steps"
    )
    print(
        f"max |logprob - original|: kept tokens {record_diff:.2e}, picked token {picked_diff:.2e}"
    )


if __name__ == "__main__":
    main()
