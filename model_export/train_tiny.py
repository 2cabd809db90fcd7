"""Train a tiny T5 to reverse short lowercase words: a trained encoder-decoder with a known answer.

Our machines reach no model hub, so tests cannot load a pretrained T5. Parity on random weights
proves the graphs, not that a trained model survives export; this model does. Task: "hello" ->
"olleh", words of 3 to 7 letters a-z drawn at random (not real words). Tokenizer: one token per
character (`tokenizers` WordLevel; `<pad>` 0 = decoder start, `</s>` 1 = EOS, `<unk>` 2).

Model: T5 (d_model 64, 2+2 layers, 4 heads, untied lm_head, relative position buckets), trained
by the project's one training loop (seq2seq_train.py); held-out words never appear in training.
About a minute on 2 CPU cores to >= 95% exact greedy answers on held-out words.

`python -m model_export.train_tiny OUT_DIR` writes the Hugging Face folder and heldout.json.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path

from . import seq2seq_train
from .seq2seq_train import Seq2SeqTask, small_t5

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


def reverse_task(seed: int) -> Seq2SeqTask:
    """A random word in, its reversal out; the held-out words never come up in training."""
    heldout = heldout_words(seed)
    excluded = set(heldout)

    def sample(rng: random.Random) -> tuple[str, str]:
        word = random_word(rng)
        while word in excluded:
            word = random_word(rng)
        return word, word[::-1]

    pairs = [(word, word[::-1]) for word in heldout]
    return Seq2SeqTask("reverse", sample, pairs, max_answer_tokens=MAX_LEN + 2)


def greedy_answers(model, tokenizer, words: list[str]) -> list[str]:
    """PyTorch greedy answers (1 beam, no sampling) for `words`, special tokens removed."""
    return seq2seq_train.greedy_answers(model, tokenizer, words, MAX_LEN + 2)


def train(seed: int = 0, **settings):
    """Train until held-out exact accuracy >= `target` (TrainSettings: defaults 1200 steps, batch
    64, lr 5e-3, target 0.98, 1 thread, checked every 100 steps).

    Returns (model, tokenizer, metrics dict with steps, seconds, heldout_accuracy).
    """
    tokenizer = char_tokenizer()
    model, metrics = seq2seq_train.train(
        lambda: small_t5(len(tokenizer)),
        tokenizer,
        reverse_task(seed),
        seq2seq_train.TrainSettings(seed=seed, **settings),
    )
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
