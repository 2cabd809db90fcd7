"""Decode speed and greedy agreement of graph variants, measured the way the app runs them.

`decode_tokens_per_s` times greedy decode steps through the KV cache (the prefill excluded) on
the CPU execution provider with a fixed thread count; `greedy_ids` gives a graph's greedy ids on
a handful of chat prompts (PROMPTS) and `greedy_matches` compares a candidate graph's with a
reference graph's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .check import OnnxDecoder, greedy_onnx, make_session

PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain what a KV cache is in one paragraph.",
    "List three fruits and their colours.",
    "Translate 'good morning' into Spanish and German.",
)


def chat_ids(tokenizer: Any, text: str) -> list[int]:
    """`text` as one user turn through the chat template (plain text when there is none)."""
    if not getattr(tokenizer, "chat_template", None):
        return tokenizer(text)["input_ids"]
    messages = [{"role": "user", "content": text}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def decode_tokens_per_s(path: Path, ids: list[int], steps: int = 48, threads: int = 2) -> float:
    """Greedy decode steps per second after a prefill of `ids`: 1 / the median step time, which
    is steadier than the mean on a shared machine. Threads: intra-op count, inter-op 1."""
    decoder = OnnxDecoder(make_session(path, threads=threads))
    nxt = int(decoder.forward(ids)[-1].argmax())
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        nxt = int(decoder.forward([nxt])[-1].argmax())
        times.append(time.perf_counter() - start)
    return round(1.0 / float(np.median(times)), 1)


def greedy_ids(tokenizer: Any, path: Path, n: int = 32) -> list[list[int]]:
    """For each prompt in PROMPTS (through the chat template), the first n greedy ids of the
    graph at `path` (no end-of-turn stop)."""
    decoder = OnnxDecoder(make_session(path))
    return [greedy_onnx(decoder, chat_ids(tokenizer, text), n) for text in PROMPTS]


def first_difference(reference: list[int], candidate: list[int]) -> int | None:
    """The first position where `candidate` differs from `reference`, or None where they agree
    over the shorter of the two."""
    return next(
        (i for i, (x, y) in enumerate(zip(reference, candidate, strict=False)) if x != y), None
    )


def greedy_matches(
    tokenizer: Any, reference: Path, candidate: Path, n: int = 32
) -> list[int | None]:
    """For each prompt in PROMPTS, the first greedy position where `candidate` differs from
    `reference` within n tokens, or None where all n are equal."""
    ref, cand = greedy_ids(tokenizer, reference, n), greedy_ids(tokenizer, candidate, n)
    return [first_difference(a, b) for a, b in zip(ref, cand, strict=True)]


REFERENCE_TOP = 10
"""Logits per position kept in the reference record: the alternatives the app shows."""


def reference_record(tokenizer: Any, reference: Path, greedy: list[list[int]]) -> dict:
    """What later checks need from the float32 reference graph once it is deleted (the default
    model ships without it): PROMPTS, their ids through the chat template, the graph's greedy ids
    on them (`greedy`, from greedy_ids), and for the
    self-check's prompt (check.prompt_ids) the prefill's REFERENCE_TOP highest logits at every
    position, ids and float32 values."""
    from .check import prompt_ids

    ids = prompt_ids(tokenizer)
    logits = OnnxDecoder(make_session(reference)).forward(ids)  # (n, vocab)
    top = np.argsort(-logits, axis=-1, kind="stable")[:, :REFERENCE_TOP]  # (n, top)
    values = np.take_along_axis(logits, top, axis=-1)  # (n, top)
    return {
        "prompts": list(PROMPTS),
        "prompts_ids": [chat_ids(tokenizer, text) for text in PROMPTS],
        "greedy_ids": greedy,
        "prompt_ids": list(ids),
        "top_ids": top.tolist(),
        "top_logits": [[float(v) for v in row] for row in values],
    }
