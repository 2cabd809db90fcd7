"""How long `inspect` takes on the default model (not a test): a 300-token conversation, the
probe run for the last row (what the Attention and Layers views ask for one selected token) and
for every reply row, interleaved with a prefill of the same tokens through model_q4.onnx (the
app's chat graph, the same session options) as the peer. On a shared machine read the ratio.

    TOKENGLASS_HOME=... .venv/bin/python -m tests.benchmarks.inspect_speed [--runs 5]
        [--threads 2] [--tokens 300] [--model FOLDER]

Prints one line per run, then the medians, the ratios to the prefill, and the agreement of the
last layer's lens with the reply's own recorded log-probabilities (model_q4.onnx, step by step).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from desktop import paths
from desktop.engine.chat import load_model
from desktop.engine.events import GenerationSettings, Message, TokenStep
from desktop.engine.session import Graph

QUESTION = (
    "Tea has a long history. It was first drunk in China, then it spread along trade routes to "
    "Japan, India, the Middle East and Europe, where it changed how people met, worked and "
    "traded. Please write a long, detailed essay about the history of tea: where it comes from, "
    "how it is grown and processed, how green, black and oolong tea differ, how tea reached "
    "Britain and why it became so popular there, what the tea trade had to do with empires and "
    "wars, and how people drink tea around the world today. Use several paragraphs."
)


def conversation(model, tokens: int) -> tuple[list[int], list[int], list[TokenStep]]:
    """(ids, reply rows, reply steps): the prompt and a greedy reply, cut to `tokens` ids."""
    settings = GenerationSettings(
        max_new_tokens=tokens, temperature=0.0, repetition_penalty=1.1, top_logprobs=10
    )
    events = list(model.generate([Message("user", QUESTION)], settings))
    prompt = list(events[0].prompt_ids)
    steps = [e for e in events if isinstance(e, TokenStep)][: tokens - len(prompt)]
    ids = [*prompt, *(s.id for s in steps)]
    rows = [len(prompt) - 1 + s.index for s in steps]  # the position that predicted each
    return ids, rows, steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--model", default=str(paths.default_model_dir()))
    args = parser.parse_args()
    model = load_model(args.model, provider="cpu", threads=args.threads)
    ids, rows, steps = conversation(model, args.tokens)
    chat = Graph(model.manifest.graphs["decoder"], "cpu", args.threads)
    feeds = {"input_ids": np.asarray([ids], np.int64), "attention_mask": np.ones((1, len(ids)))}
    feeds["attention_mask"] = feeds["attention_mask"].astype(np.int64)
    for name, (shape, _) in chat.inputs.items():
        if name.startswith("past_key_values"):
            feeds[name] = np.zeros((1, shape[1], 0, shape[3]), np.float32)  # (B, kv, 0, hd)
    print(f"{len(ids)} tokens ({len(ids) - len(rows)} prompt, {len(rows)} reply), "
          f"{args.threads} threads")  # fmt: skip
    model.inspect(ids, positions=[len(ids) - 1])  # opens the probe (not timed)
    chat.run(feeds)
    times: dict[str, list[float]] = {"prefill": [], "last_row": [], "reply_rows": []}
    for run in range(args.runs):
        started = time.perf_counter()
        chat.run(feeds, ["logits"])
        times["prefill"].append(time.perf_counter() - started)
        times["last_row"].append(model.inspect(ids, positions=[len(ids) - 1]).seconds)
        times["reply_rows"].append(model.inspect(ids, positions=rows).seconds)
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print("medians: " + ", ".join(f"{k} {v:.3f} s" for k, v in medians.items()))
    print(f"ratio last_row/prefill={medians['last_row'] / medians['prefill']:.2f} "
          f"reply_rows/prefill={medians['reply_rows'] / medians['prefill']:.2f}")  # fmt: skip
    got = model.inspect(ids, positions=rows, top_k=10)
    worst = 0.0
    for row, step in enumerate(steps):
        want = {a.id: a.logprob for a in step.top}
        for token, logprob in zip(got.lens_ids[-1, row], got.lens_logprobs[-1, row], strict=True):
            worst = max(worst, abs(float(logprob) - want.get(int(token), np.inf)))
    top1 = got.lens_ids[-1, :, 0].tolist() == [s.top[0].id for s in steps]
    print(f"lens vs the reply's own records: top-1 equal {top1}, top-10 max |diff| {worst:.1e}")


if __name__ == "__main__":
    main()
