"""Streaming detokenization and encoding (cases A1-A7), on tokenizers trained in fixtures."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from desktop.engine.tokenizer import label_for_bytes

ALL_KINDS = ["byte_level", "metaspace", "llama_legacy", "t5_like"]
TEXTS = [
    "Dear [Name], I hope this email finds you well.",
    "Once upon a time",
    "Hello world",
    "café 你好 😃 🤗!",
    "two  spaces and\nnew line",
]


def stream_chunks(tok, ids):
    stream = tok.stream()
    return [stream.feed(i) for i in ids]


def test_a1_byte_level_emoji_streams_without_replacement_char(tokenizers, tokenizer_dirs):
    tok = tokenizers["byte_level"]
    ids = tok.encode("🤗")
    assert len(ids) >= 2, "the emoji must be split over several byte-level tokens"
    chunks = stream_chunks(tok, ids)
    assert chunks[:-1] == [""] * (len(ids) - 1)
    assert chunks[-1] == "🤗"
    reference = Tokenizer.from_file(str(tokenizer_dirs["byte_level"] / "tokenizer.json"))
    assert "".join(chunks) == reference.decode(ids)
    labels = [tok.token_label(i) for i in ids]
    assert all("\ufffd" not in label for label in labels)
    assert labels[0].startswith("<F0")  # the raw bytes of an incomplete token


def test_a2_byte_fallback_emoji_joins_to_the_character(tokenizers):
    tok = tokenizers["metaspace"]
    pieces = tok.pieces("😃")
    byte_tokens = [p for p in pieces if p.bytes and p.bytes[0] >= 0x80]
    assert [p.bytes for p in byte_tokens] == [bytes([b]) for b in "😃".encode()]
    chunks = stream_chunks(tok, [p.id for p in pieces])
    assert chunks[-1] == "😃"
    assert all(c in ("", " ") for c in chunks[:-1])
    assert "".join(chunks) == "😃"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_a3_streamed_reply_keeps_every_space(tokenizers, kind):
    tok = tokenizers[kind]
    text = "Dear [Name], I hope this email finds you well."
    ids = tok.encode(text)
    assert "".join(stream_chunks(tok, ids)) == text
    assert tok.decode(ids) == text


@pytest.mark.parametrize("kind", ["metaspace", "llama_legacy", "t5_like"])
def test_a4_first_piece_has_no_stray_leading_space(tokenizers, kind):
    tok = tokenizers[kind]
    ids = tok.encode("Once upon a time")
    assert tok._tok.id_to_token(ids[0]).startswith("▁")
    chunks = stream_chunks(tok, ids)
    assert next(c for c in chunks if c).startswith("O")
    assert "".join(chunks) == "Once upon a time"


def test_a5_metaspace_joined_pieces_keep_inner_space(tokenizers):
    tok = tokenizers["in_the_house"]
    ids = tok.encode("in the house")
    assert [tok._tok.id_to_token(i) for i in ids] == ["▁in▁the", "▁house"]
    assert tok.decode(ids) == "in the house"
    assert "".join(stream_chunks(tok, ids)) == "in the house"


def _t5_can_spell(text: str) -> bool:
    """T5's vocabulary has no newline or emoji (they become <unk>) and no runs of inner spaces."""
    return not ("\n" in text or "  " in text.strip() or "😃" in text)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (kind, text)
        for kind in ALL_KINDS
        for text in ["  hello", " hello", "hello", *TEXTS]
        if kind != "t5_like" or _t5_can_spell(text)
    ],
)
def test_a6_text_round_trips_through_encode_and_decode(tokenizers, kind, text):
    tok = tokenizers[kind]
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("kind", ["t5_like", "metaspace"])
def test_a7_seq2seq_output_has_no_marker_or_eos(tokenizers, kind):
    tok = tokenizers[kind]
    ids = tok.encode("Hello world", add_special_tokens=True)
    eos = tok.token_id("</s>")
    ids = [*ids, eos] if ids[-1] != eos else ids
    text = "".join(stream_chunks(tok, ids))
    assert text == "Hello world"
    assert "▁" not in text and "</s>" not in text


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_pieces_cover_the_text_with_spans_and_bytes(tokenizers, kind):
    tok = tokenizers[kind]
    text = "Hello world, café"
    pieces = tok.pieces(text)
    assert b"".join(p.bytes for p in pieces).decode().strip() == text.strip()
    assert pieces[0].start == 0 and pieces[-1].end == len(text)
    for piece in pieces:
        assert 0 <= piece.start <= piece.end <= len(text)
        assert not piece.special


def test_label_for_bytes_never_shows_replacement_char():
    assert label_for_bytes(b"\xf0\x9f") == "<F0 9F>"
    assert label_for_bytes(b" a\xf0\x9f") == " a<F0 9F>"
    assert label_for_bytes("é".encode()) == "é"
    assert label_for_bytes(b"\xa4\x97") == "<A4 97>"
