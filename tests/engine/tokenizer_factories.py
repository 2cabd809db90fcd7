"""Small tokenizers trained in tests, one per family of real tokenizers.

byte_level: GPT-2 / SmolLM2 kind (ByteLevel pre-tokenizer and decoder).
metaspace: modern SentencePiece kind (Metaspace pre-tokenizer and decoder, BPE with byte fallback).
llama_legacy: Llama/Mistral tokenizer.json kind (Prepend+Replace normalizer, Strip decoder).
mistral_v3: Mistral v0.3 / Nemo kind (Metaspace prepend_scheme "first", split off; [INST] special).
t5_like: Unigram + Metaspace, `</s>` appended by the post-processor (T5, Marian).
None of the training texts contain emoji, so emoji fall back to bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

CORPUS = [
    "Dear [Name], I hope this email finds you well.",
    "Once upon a time there was a little house in the woods.",
    "Hello world! The capital of France is Paris.",
    "What is the capital of France? It is Paris, of course.",
    "Tokens, bytes and spaces: they all have to round-trip.",
    "café naïve résumé 你好",
] * 20

BYTE_FALLBACK_TOKENS = [f"<0x{i:02X}>" for i in range(256)]


def _with_byte_vocab(tok: Tokenizer) -> Tokenizer:
    """Add SentencePiece's <0xNN> byte tokens to the model vocabulary (not as added tokens)."""
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for piece in BYTE_FALLBACK_TOKENS:
        vocab.setdefault(piece, len(vocab))
    return Tokenizer.from_str(json.dumps(spec))


def byte_level() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _train_sentencepiece_bpe(tok: Tokenizer) -> Tokenizer:
    """Train a byte-fallback BPE on CORPUS (vocab 600; <unk>, <s>, </s>), give it every byte
    token, and put <s> before each encoding, as SentencePiece Llama tokenizers do."""
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator(CORPUS, trainer)
    tok = _with_byte_vocab(tok)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok


def metaspace() -> Tokenizer:
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
    return _train_sentencepiece_bpe(tok)


def llama_legacy() -> Tokenizer:
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    return _train_sentencepiece_bpe(tok)


def mistral_v3() -> Tokenizer:
    """Metaspace that prepends "▁" only at the start of the text (not after a special token) and
    does not split on spaces, as Mistral v0.3 and Nemo's tokenizer.json do."""
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<unk>", "<s>", "</s>", "[INST]", "[/INST]"]
    )
    tok.train_from_iterator(CORPUS, trainer)
    return _with_byte_vocab(tok)


def t5_like() -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    return tok


ADDED_WORDS = ["đem", "café", "hello there", "<think>"]  # words a fine-tune adds (not special)


def byte_level_added() -> Tokenizer:
    """byte_level with added words whose letters are in ByteLevel's byte alphabet (đ is its
    stand-in for byte 0x11, é for 0xE9: tokenizers#1915, #1996) and one more special token."""
    tok = byte_level()
    tok.add_tokens(ADDED_WORDS)
    tok.add_special_tokens(["<|tool|>"])
    return tok


def metaspace_added() -> Tokenizer:
    tok = metaspace()
    tok.add_tokens(ADDED_WORDS)
    tok.add_special_tokens(["<|tool|>"])
    return tok


def unigram_in_the_house() -> Tokenizer:
    """A Metaspace tokenizer whose vocabulary has "▁in▁the" (case A5)."""
    vocab = [("<unk>", 0.0), ("▁in▁the", -1.0), ("▁house", -1.0), ("▁in", -8.0), ("▁the", -8.0)]
    vocab += [(c, -10.0) for c in "▁inthehouse"]
    tok = Tokenizer(models.Unigram(vocab, unk_id=0))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(split=False)
    tok.decoder = decoders.Metaspace()
    return tok


FACTORIES = {
    "byte_level": (byte_level, {"bos_token": None, "eos_token": "<|im_end|>"}),
    "metaspace": (metaspace, {"bos_token": "<s>", "eos_token": "</s>"}),
    "llama_legacy": (llama_legacy, {"bos_token": "<s>", "eos_token": "</s>"}),
    "mistral_v3": (mistral_v3, {"bos_token": "<s>", "eos_token": "</s>"}),
    "t5_like": (t5_like, {"eos_token": "</s>", "pad_token": "<pad>"}),
    "in_the_house": (unigram_in_the_house, {}),
    "byte_level_added": (byte_level_added, {"bos_token": None, "eos_token": "<|im_end|>"}),
    "metaspace_added": (metaspace_added, {"bos_token": "<s>", "eos_token": "</s>"}),
}


def write_tokenizer(kind: str, folder: Path) -> Path:
    """Train tokenizer `kind` and write tokenizer.json + tokenizer_config.json into `folder`."""
    factory, config = FACTORIES[kind]
    folder.mkdir(parents=True, exist_ok=True)
    factory().save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder
