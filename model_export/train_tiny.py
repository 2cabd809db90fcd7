"""Train a tiny T5 to reverse short lowercase words: a trained encoder-decoder with a known answer.

Our machines reach no model hub, so tests cannot load a pretrained T5. Parity on random weights
proves the graphs, not that a trained model survives export; this model does. Task: "hello" ->
"olleh", words of 3 to 7 letters a-z drawn at random (not real words). Tokenizer: one token per
character (`tokenizers` WordLevel; `<pad>` 0 = decoder start, `</s>` 1 = EOS, `<unk>` 2).

Model: T5 (d_model 64, 2+2 layers, 4 heads, untied lm_head, relative position buckets), trained
with AdamW and teacher forcing on fresh random batches; held-out words never appear in training.
About a minute on 2 CPU cores to >= 95% exact greedy answers on held-out words.

`python -m model_export.train_tiny OUT_DIR` writes the Hugging Face folder and heldout.json.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import time
from pathlib import Path

import torch

ALPHABET = string.ascii_lowercase
SPECIALS = ["<pad>", "</s>", "<unk>"]
MIN_LEN, MAX_LEN = 3, 7
HELDOUT = 200


def char_tokenizer():
    """A fast tokenizer with one token per lowercase letter; encoding appends `</s>`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([*SPECIALS, *ALPHABET])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
    )


def tiny_t5(vocab_size: int):
    """The untrained model: T5 with d_model 64, 2 encoder + 2 decoder layers, untied lm_head."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=vocab_size, d_model=64, d_kv=16, d_ff=128, num_layers=2,
        num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=16,
        relative_attention_max_distance=32, dropout_rate=0.0, tie_word_embeddings=False,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip
    return T5ForConditionalGeneration(config)


def random_word(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(MIN_LEN, MAX_LEN)))


def heldout_words(seed: int, count: int = HELDOUT) -> list[str]:
    """`count` distinct random words, fixed by `seed`; training never samples them."""
    rng, words = random.Random(seed + 1), []
    while len(words) < count:
        word = random_word(rng)
        if word not in words:
            words.append(word)
    return words


def _batch(tokenizer, words: list[str]):
    """Encoder ids/mask int64[B, S] and labels int64[B, T] (padding -100) for `words`."""
    src = tokenizer(words, padding=True, return_tensors="pt")
    tgt = tokenizer([w[::-1] for w in words], padding=True, return_tensors="pt")
    labels = tgt["input_ids"].masked_fill(tgt["attention_mask"] == 0, -100)
    return src["input_ids"], src["attention_mask"], labels


def greedy_answers(model, tokenizer, words: list[str]) -> list[str]:
    """PyTorch greedy answers (1 beam, no sampling) for `words`, special tokens removed."""
    src = tokenizer(words, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**src, do_sample=False, num_beams=1, max_new_tokens=MAX_LEN + 2)
    return tokenizer.batch_decode(out, skip_special_tokens=True)


def exact_accuracy(model, tokenizer, words: list[str]) -> float:
    answers = greedy_answers(model, tokenizer, words)
    return sum(a == w[::-1] for a, w in zip(answers, words, strict=True)) / len(words)


def train(
    seed: int = 0,
    max_steps: int = 1200,
    batch_size: int = 64,
    lr: float = 5e-3,
    target: float = 0.98,
    threads: int = 1,
    eval_every: int = 100,
):
    """Train until held-out exact accuracy >= `target` (checked each `eval_every` steps).

    Returns (model, tokenizer, metrics dict with steps, seconds, heldout_accuracy).
    """
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(
        threads
    )  # 1 thread: tiny matrices; 2 threads on a busy machine is 10x slower
    try:
        return _train(seed, max_steps, batch_size, lr, target, eval_every)
    finally:
        torch.set_num_threads(saved_threads)


def _train(seed: int, max_steps: int, batch_size: int, lr: float, target: float, eval_every: int):
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = char_tokenizer()
    model = tiny_t5(len(tokenizer))
    heldout = set(heldout_words(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    # linear warm-up over 50 steps, then linear decay to 0 at max_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min((i + 1) / 50, max(0.0, 1 - i / max_steps))
    )
    started, accuracy, step = time.perf_counter(), 0.0, 0
    for step in range(1, max_steps + 1):
        words = []
        while len(words) < batch_size:
            word = random_word(rng)
            if word not in heldout:
                words.append(word)
        input_ids, mask, labels = _batch(tokenizer, words)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % eval_every == 0:
            model.eval()
            accuracy = exact_accuracy(model, tokenizer, sorted(heldout))
            model.train()
            print(f"step {step}: loss {loss.item():.3f}, held-out exact {accuracy:.1%}", flush=True)
            if accuracy >= target:
                break
    model.eval()
    seconds = time.perf_counter() - started
    metrics = {"steps": step, "seconds": round(seconds, 1), "heldout_accuracy": accuracy}
    return model, tokenizer, metrics


def train_to_folder(out_dir: Path, seed: int = 0, **kwargs) -> dict:
    """Train, then save the HF folder (model + tokenizer) and heldout.json into `out_dir`.

    heldout.json: {"metrics": ..., "examples": [[word, reversed word], ...]} for the held-out words.
    """
    model, tokenizer, metrics = train(seed=seed, **kwargs)
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    examples = [[w, w[::-1]] for w in heldout_words(seed)]
    record = {"task": "reverse a lowercase word", "metrics": metrics, "examples": examples}
    (out_dir / "heldout.json").write_text(json.dumps(record, indent=1) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(train_to_folder(args.out_dir, seed=args.seed)))


if __name__ == "__main__":
    main()
