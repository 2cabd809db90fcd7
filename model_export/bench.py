"""Decode speed and greedy agreement of graph variants, measured the way the app runs them.

`decode_tokens_per_s` times greedy decode steps through the KV cache (the prefill excluded) on
the CPU execution provider with a fixed thread count; `greedy_matches` compares the greedy ids of
a candidate graph with a reference graph on a handful of chat prompts.
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


def greedy_matches(
    tokenizer: Any, reference: Path, candidate: Path, n: int = 32
) -> list[int | None]:
    """For each prompt in PROMPTS, the first greedy position where `candidate` differs from
    `reference` within n tokens, or None where all n are equal."""
    ref = OnnxDecoder(make_session(reference))
    cand = OnnxDecoder(make_session(candidate))
    result: list[int | None] = []
    for text in PROMPTS:
        ids = chat_ids(tokenizer, text)
        a, b = greedy_onnx(ref, ids, n), greedy_onnx(cand, ids, n)
        result.append(next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None))
    return result
