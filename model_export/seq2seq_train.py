"""Train a small encoder-decoder on a generated task until its held-out answers are right.

One loop for every task the project trains (the tiny word-reversing T5 of the tests, the bundled
dates model): fresh random batches from the task's sampler (teacher forcing, AdamW, linear warm-up
then linear decay), and every `eval_every` steps PyTorch greedy answers (1 beam, no sampling) on the
held-out examples; training stops as soon as the share of exactly right answers reaches `target`.
Does not know any task, tokenizer or export; the caller checks the figure it returns.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

WARMUP_STEPS = 50


@dataclass(frozen=True)
class Seq2SeqTask:
    """A generated task. sample(rng) -> (input text, right answer) never returns a held-out input;
    heldout: (input text, right answer) pairs; max_answer_tokens: the longest answer in tokens,
    end token included (greedy decoding stops there)."""

    name: str
    sample: Callable[[random.Random], tuple[str, str]]
    heldout: Sequence[tuple[str, str]]
    max_answer_tokens: int


@dataclass(frozen=True)
class TrainSettings:
    """seed: torch and sampler seed; lr: peak AdamW learning rate; target: stop when this share of
    held-out answers is exactly right; threads: torch intra-op threads while training (1 is
    fastest for tiny matrices: 2 threads on a busy machine was 10x slower)."""

    seed: int = 0
    max_steps: int = 1200
    batch_size: int = 64
    lr: float = 5e-3
    target: float = 0.98
    threads: int = 1
    eval_every: int = 100
    eval_batch: int = 500


def greedy_answers(model, tokenizer, texts: Sequence[str], max_new_tokens: int, batch: int = 500):
    """PyTorch greedy answers (1 beam, no sampling) for `texts`, special tokens removed."""
    answers: list[str] = []
    for start in range(0, len(texts), batch):
        src = tokenizer(list(texts[start : start + batch]), padding=True, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(
                **src, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens
            )  # (B, T)
        answers += tokenizer.batch_decode(out, skip_special_tokens=True)
    return answers


def exact_accuracy(model, tokenizer, task: Seq2SeqTask, batch: int = 500) -> float:
    """Share of `task.heldout` whose greedy answer equals the right answer exactly."""
    texts = [text for text, _ in task.heldout]
    answers = greedy_answers(model, tokenizer, texts, task.max_answer_tokens, batch)
    right = sum(a == want for a, (_, want) in zip(answers, task.heldout, strict=True))
    return right / len(task.heldout)


def _batch(tokenizer, pairs: list[tuple[str, str]]):
    """Encoder ids/mask int64[B, S] and labels int64[B, T] (padding -100) for `pairs`."""
    src = tokenizer([p[0] for p in pairs], padding=True, return_tensors="pt")
    tgt = tokenizer([p[1] for p in pairs], padding=True, return_tensors="pt")
    labels = tgt["input_ids"].masked_fill(tgt["attention_mask"] == 0, -100)
    return src["input_ids"], src["attention_mask"], labels


def train(
    make_model: Callable[[], torch.nn.Module], tokenizer, task: Seq2SeqTask, settings: TrainSettings
):
    """Train `make_model()` (called after seeding torch) on `task`; returns (model, metrics).

    metrics: steps, seconds (wall time of the loop, evaluations included), cpu_seconds (the
    process's CPU time over the loop: with one thread, about the wall time on an idle core, which
    a shared machine's wall time is not), heldout_accuracy (the
    last evaluation's share of exactly right held-out answers), heldout (their count). Stops at
    `settings.target` or after `settings.max_steps`; the caller decides whether the figure is
    enough.
    """
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _train(make_model, tokenizer, task, settings)
    finally:
        torch.set_num_threads(saved_threads)


def _train(make_model, tokenizer, task: Seq2SeqTask, s: TrainSettings):
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    model = make_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.0)
    # linear warm-up over WARMUP_STEPS, then linear decay to 0 at max_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min((i + 1) / WARMUP_STEPS, max(0.0, 1 - i / s.max_steps))
    )
    started, cpu_started, accuracy, step = time.perf_counter(), time.process_time(), 0.0, 0
    for step in range(1, s.max_steps + 1):
        pairs = [task.sample(rng) for _ in range(s.batch_size)]
        input_ids, mask, labels = _batch(tokenizer, pairs)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % s.eval_every == 0 or step == s.max_steps:
            model.eval()
            accuracy = exact_accuracy(model, tokenizer, task, s.eval_batch)
            model.train()
            print(
                f"{task.name} step {step}: loss {loss.item():.4f}, held-out exact {accuracy:.2%}",
                flush=True,
            )
            if accuracy >= s.target:
                break
    model.eval()
    seconds = time.perf_counter() - started
    metrics = {
        "steps": step,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "heldout_accuracy": accuracy,
        "heldout": len(task.heldout),
    }
    return model, metrics


def small_t5(vocab_size: int):
    """An untrained T5 small enough to train here in a minute or two (the word-reversing fixture
    and the dates model): d_model 64, 2 encoder + 2 decoder layers of 4 heads, untied lm_head."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=vocab_size, d_model=64, d_kv=16, d_ff=128, num_layers=2,
        num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=16,
        relative_attention_max_distance=32, dropout_rate=0.0, tie_word_embeddings=False,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip
    return T5ForConditionalGeneration(config)
