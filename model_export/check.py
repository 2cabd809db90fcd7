"""The self-check every export runs: the ONNX graph against the PyTorch model it came from.

Three measurements, all on fixed inputs so reports compare across runs:
1. logits parity: the prefill of a fixed prompt and 4 greedy decode steps through the KV cache,
   max |onnx - torch| over every logit (float32[batch, seq, vocab]);
2. greedy parity: 32 greedy tokens from the ONNX KV-cache loop against PyTorch's own KV-cache loop
   (no early stop at EOS, so always 32);
3. for a quantized variant, top-1 agreement with the unquantized ONNX graph over 200 positions of
   a fixed text (onnxruntime#19450: weight quantization can silently ruin a model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

PROMPT = "What is the capital of France? Answer in one word, then explain why."
DECODE_STEPS = 4
GREEDY_TOKENS = 32
AGREEMENT_POSITIONS = 200
LOGITS_ATOL = 1e-3
MIN_AGREEMENT = 0.90
AGREEMENT_TEXT = (
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined movable metal type, oil-based ink and a wooden press into one system. Books became "
    "cheaper, literacy spread, and ideas moved faster across Europe than ever before. Scientists "
    "shared results, reformers printed pamphlets, and merchants kept better accounts. 1, 2, 3: "
    "numbers, tabs\tand emoji 🙂 also appear, as does 中文 text. "
)


def prompt_ids(tokenizer: Any) -> list[int]:
    """The fixed prompt, through the chat template when the tokenizer has one."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": PROMPT}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(PROMPT)["input_ids"]


def agreement_ids(tokenizer: Any) -> list[int]:
    """At least 201 ids of the fixed text (repeated as needed): 200 next-token positions."""
    ids: list[int] = tokenizer(AGREEMENT_TEXT, add_special_tokens=False)["input_ids"]
    while len(ids) <= AGREEMENT_POSITIONS:
        ids = ids + ids
    return ids[: AGREEMENT_POSITIONS + 1]


def make_session(path: Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class OnnxDecoder:
    """A minimal KV-cache loop over one decoder graph (the app's own lives in desktop/engine)."""

    session: ort.InferenceSession

    def __post_init__(self) -> None:
        self.past_names = [i.name for i in self.session.get_inputs() if i.name.startswith("past_")]
        self.input_names = {i.name for i in self.session.get_inputs()}
        first = next(i for i in self.session.get_inputs() if i.name.startswith("past_"))
        self.kv_heads, self.head_dim = int(first.shape[1]), int(first.shape[3])
        self.reset()

    def reset(self) -> None:
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), np.float32)  # (B, kv, 0, hd)
        self.past = dict.fromkeys(self.past_names, empty)
        self.length = 0

    def forward(self, ids: list[int]) -> np.ndarray:
        """Feed `ids` after the cached ones; returns float32[seq, vocab] and grows the cache."""
        n = len(ids)
        feed: dict[str, np.ndarray] = {
            "input_ids": np.array([ids], np.int64),  # (1, n)
            "attention_mask": np.ones((1, self.length + n), np.int64),  # (1, past + n)
            "position_ids": np.arange(self.length, self.length + n, dtype=np.int64)[None],
        }
        feed = {k: v for k, v in feed.items() if k in self.input_names}
        outputs = self.session.run(None, {**feed, **self.past})
        names = [o.name for o in self.session.get_outputs()]
        result = dict(zip(names, outputs, strict=True))
        for name in self.past_names:
            self.past[name] = result[name.replace("past_key_values", "present")]
        self.length += n
        return result["logits"][0]  # (n, vocab)


def _torch_steps(model: Any, ids: list[int], steps: int) -> tuple[list[np.ndarray], list[int]]:
    """PyTorch prefill, then `steps` greedy decode steps; returns each call's logits and the ids."""
    import torch

    out_logits, chosen = [], []
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), use_cache=True)
        for _ in range(steps + 1):
            logits = out.logits[0].float().numpy()  # (n, vocab)
            out_logits.append(logits)
            nxt = int(logits[-1].argmax())
            chosen.append(nxt)
            if len(out_logits) > steps:
                break
            out = model(
                input_ids=torch.tensor([[nxt]]), past_key_values=out.past_key_values, use_cache=True
            )
    return out_logits, chosen


def _onnx_steps(
    decoder: OnnxDecoder, ids: list[int], steps: int
) -> tuple[list[np.ndarray], list[int]]:
    decoder.reset()
    out_logits, chosen = [decoder.forward(ids)], []
    for _ in range(steps):
        nxt = int(out_logits[-1][-1].argmax())
        chosen.append(nxt)
        out_logits.append(decoder.forward([nxt]))
    chosen.append(int(out_logits[-1][-1].argmax()))
    return out_logits, chosen


def greedy_onnx(decoder: OnnxDecoder, ids: list[int], n: int = GREEDY_TOKENS) -> list[int]:
    """n greedy ids from the ONNX KV-cache loop (no EOS stop)."""
    return _onnx_steps(decoder, ids, n - 1)[1]


def check_against_torch(model: Any, tokenizer: Any, onnx_path: Path) -> dict:
    """Logits and greedy parity of `onnx_path` with `model`; the report's `check` section."""
    ids = prompt_ids(tokenizer)
    decoder = OnnxDecoder(make_session(onnx_path))
    torch_logits, _ = _torch_steps(model, ids, DECODE_STEPS)
    onnx_logits, _ = _onnx_steps(decoder, ids, DECODE_STEPS)
    diffs = [float(np.abs(a - b).max()) for a, b in zip(torch_logits, onnx_logits, strict=True)]
    torch_greedy = _torch_steps(model, ids, GREEDY_TOKENS - 1)[1]
    onnx_greedy = greedy_onnx(decoder, ids)
    first_diff = next(
        (i for i, (a, b) in enumerate(zip(torch_greedy, onnx_greedy, strict=True)) if a != b), None
    )
    return {
        "prompt_tokens": len(ids),
        "logits_max_abs_diff": max(diffs),
        "logits_max_abs_diff_per_call": diffs,
        "logits_atol": LOGITS_ATOL,
        "greedy_tokens": GREEDY_TOKENS,
        "greedy_equal": first_diff is None,
        "greedy_first_difference": first_diff,
        "greedy_ids_torch": torch_greedy,
        "greedy_ids_onnx": onnx_greedy,
    }


def logits_each(decoder: OnnxDecoder, ids: list[int]) -> np.ndarray:
    """float32[len(ids), vocab]: the next-token logits after each of `ids`, fed one at a time
    through the KV cache from an empty one; for graphs that return only the last position's
    logits (gguf_carry's rescored lm_head), where one prefill gives a single row."""
    decoder.reset()
    return np.stack([decoder.forward([token])[-1] for token in ids])


def top1_agreement(tokenizer: Any, reference: Path, candidate: Path) -> float:
    """Fraction of 200 positions where `candidate`'s top-1 next token equals `reference`'s
    (the candidate fed one token at a time: it may return the last position's logits only)."""
    ids = agreement_ids(tokenizer)[:AGREEMENT_POSITIONS]
    ref = OnnxDecoder(make_session(reference)).forward(ids).argmax(-1)  # (200,)
    cand = logits_each(OnnxDecoder(make_session(candidate)), ids).argmax(-1)  # (200,)
    return float((ref == cand).mean())
