"""The trained tiny T5 (reverses lowercase words): it learned the task, and its export keeps it.

Parity on random weights proves the graphs; this proves a trained model survives the trip: the
ONNX cached greedy loop must give PyTorch's greedy answers on 50 held-out words, exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from model_export.seq2seq_runtime import OnnxSeq2Seq
from model_export.train_tiny import greedy_answers
from tests.fixtures.seq2seq_models import hf_source_dir


def _onnx_answers(folder: Path, words: list[str]) -> list[str]:
    """Greedy answers from the exported folder alone: tokenizer.json + the ONNX cached loop."""
    gen = json.loads((folder / "generation_config.json").read_text())
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    runner = OnnxSeq2Seq(folder, AutoConfig.from_pretrained(folder))
    answers = []
    for word in words:
        src = np.array([tok.encode(word).ids], np.int64)  # (1, S)
        ids = runner.greedy(src, gen["decoder_start_token_id"], {gen["eos_token_id"]}, 12)
        answers.append(tok.decode(ids, skip_special_tokens=True))
    return answers


def test_trained_t5_learned_the_task(trained_t5_training: dict, trained_t5_examples):
    metrics = trained_t5_training["metrics"]
    assert metrics["heldout_accuracy"] >= 0.95
    assert metrics["seconds"] < 120
    assert len(trained_t5_examples) == 200
    assert all(answer == word[::-1] for word, answer in trained_t5_examples)


def test_trained_t5_export_reproduces_pytorch_greedy_on_50_heldout(
    trained_t5_dir: Path, trained_t5_examples
):
    words = [word for word, _ in trained_t5_examples[:50]]
    hf = hf_source_dir(trained_t5_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(str(hf)).eval()
    reference = greedy_answers(model, AutoTokenizer.from_pretrained(hf), words)
    onnx_answers = _onnx_answers(trained_t5_dir, words)
    assert onnx_answers == reference
    right = sum(a == w[::-1] for a, w in zip(onnx_answers, words, strict=True))
    assert right >= 0.95 * len(words)


def test_trained_t5_export_report(trained_t5_dir: Path):
    check = json.loads((trained_t5_dir / "export_report.json").read_text())["check"]
    assert check["failures"] == []
    assert max(check["logits"]["max_abs_diff"]) <= 1e-3
    assert check["greedy"]["equal"] is True


def test_trained_t5_answers_right_through_the_engine(trained_t5_dir: Path, trained_t5_examples):
    """The app's engine (desktop.engine) on the export: each word's reply is its reversal."""
    from desktop.engine.chat import load_model
    from desktop.engine.events import GenerationDone, GenerationSettings, Message

    model = load_model(trained_t5_dir, provider="cpu", threads=1)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=12)
    words = [word for word, _ in trained_t5_examples[:50]]
    replies = []
    for word in words:
        done = list(model.generate([Message("user", word)], settings, None))[-1]
        assert isinstance(done, GenerationDone) and done.finish_reason == "stop"
        replies.append(done.text)
    assert replies == _onnx_answers(trained_t5_dir, words)
    right = sum(r == answer for r, (_, answer) in zip(replies, trained_t5_examples, strict=False))
    assert right >= 0.95 * len(words)
