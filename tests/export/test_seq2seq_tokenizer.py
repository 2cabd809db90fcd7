"""Fast tokenizers for encoder-decoder exports: the slow MarianTokenizer (opus-mt) is converted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer
from transformers import MarianConfig, MarianMTModel, T5Config, T5ForConditionalGeneration

from model_export.errors import ExportError
from model_export.seq2seq import export_seq2seq
from model_export.seq2seq_tokenizer import fast_tokenizer
from tests.fixtures.seq2seq_models import slow_marian_tokenizer

TEXTS = [
    "Hello world",
    "The house is wonderful and the garden is green.",
    "Dear [Name], I hope this email finds you well.",
    ">>de<< Once upon a time there was a little house.",
    "café  naïve – résumé 42",
    "Quirky zebras vex.",
]


@pytest.fixture(scope="module")
def slow_marian(tmp_path_factory):
    return slow_marian_tokenizer(tmp_path_factory.mktemp("marian-spm"))


def test_marian_fast_tokenizer_encodes_like_the_slow_one(slow_marian):
    fast = fast_tokenizer(slow_marian)
    assert fast.is_fast
    for text in TEXTS:
        assert fast(text)["input_ids"] == slow_marian(text)["input_ids"], text
    assert fast(">>de<< Hello")["input_ids"][0] == slow_marian.encoder[">>de<<"]


def test_marian_fast_tokenizer_decodes_like_the_slow_one(slow_marian):
    """Case A7: no "▁", no "</s>" and no doubled spaces in decoded text."""
    fast = fast_tokenizer(slow_marian)
    for text in TEXTS[:3]:
        ids = slow_marian(text)["input_ids"]
        decoded = fast.decode(ids, skip_special_tokens=True)
        assert decoded == slow_marian.decode(ids, skip_special_tokens=True)
        assert decoded == text


def test_slow_marian_export_writes_tokenizer_json_and_passes(slow_marian, tmp_path: Path):
    torch.manual_seed(0)
    model = MarianMTModel(
        MarianConfig(
            vocab_size=len(slow_marian.encoder), d_model=32, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
            decoder_ffn_dim=64, max_position_embeddings=256,
            pad_token_id=slow_marian.pad_token_id, decoder_start_token_id=slow_marian.pad_token_id,
            eos_token_id=slow_marian.eos_token_id,
        )
    )  # fmt: skip
    report = export_seq2seq(model, slow_marian, tmp_path)
    assert report["check"]["failures"] == []
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert tok.encode("Hello world").ids == slow_marian("Hello world")["input_ids"]


def test_other_slow_tokenizer_is_refused(slow_marian, tmp_path: Path):
    from transformers import T5Tokenizer

    slow = T5Tokenizer(vocab_file=slow_marian.spm_files[0], extra_ids=0, legacy=False)
    model = T5ForConditionalGeneration(
        T5Config(vocab_size=len(slow), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4)
    )
    with pytest.raises(ExportError, match="T5Tokenizer is a slow tokenizer"):
        export_seq2seq(model, slow, tmp_path)
