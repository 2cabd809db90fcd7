"""Case I2: each token's label and bytes come from the tokenizer's own decoding, for every kind of
token (ordinary, byte-fallback, part of a UTF-8 character, special, added), checked id by id
against `tokenizers`' decode on every test tokenizer and on the default model's."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer

from desktop.engine.tokenizer import TextTokenizer, label_for_bytes
from tests.engine.tokenizer_factories import ADDED_WORDS, FACTORIES


def _anchor(reference: Tokenizer) -> tuple[list[int], str]:
    """A word put before each id, so that the decoder sees the id inside a text (a decode of the
    id alone drops SentencePiece's leading space). Not the anchor the tokenizer module uses."""
    for word in ("Hello", "in", "house"):
        ids = reference.encode(word, add_special_tokens=False).ids
        if reference.decode(ids) == word:
            return ids, word
    raise AssertionError("no anchor word")


def _byte_level_garbles(reference: Tokenizer, content: str) -> bool:
    """tokenizers#1996: its ByteLevel decoder also decodes added tokens, so letters of its byte
    alphabet ("đ" stands for byte 0x11) change. The right text of an added token is its own."""
    return reference.decoder is not None and reference.decoder.decode([content]) != content


def assert_every_id_agrees(tok: TextTokenizer, reference: Tokenizer) -> int:
    """Checks every id; returns how many are parts of a UTF-8 character (decode shows U+FFFD)."""
    anchor_ids, anchor_text = _anchor(reference)
    added = reference.get_added_tokens_decoder()
    partial = 0
    for token_id in range(reference.get_vocab_size(with_added_tokens=True)):
        raw, label = tok.token_bytes(token_id), tok.token_label(token_id)
        decoded = reference.decode([*anchor_ids, token_id], skip_special_tokens=False)
        assert decoded.startswith(anchor_text), token_id
        text = decoded[len(anchor_text) :]
        if token_id in added:
            content = added[token_id].content
            assert text == content or _byte_level_garbles(reference, content), token_id
            text = content
        assert raw.decode("utf-8", "replace") == text, (token_id, raw, text)
        assert label == label_for_bytes(raw)
        if "\ufffd" in text:
            partial += 1
            # the bytes show as <F0 9F>; U+FFFD only where the token's text is that character
            assert label.count("\ufffd") == raw.count("\ufffd".encode()), (token_id, raw)
        else:
            assert label == text and raw == text.encode(), (token_id, label, text)
    return partial


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_i2_every_token_agrees_with_the_tokenizers_decode(tokenizers, tokenizer_dirs, kind):
    reference = Tokenizer.from_file(str(tokenizer_dirs[kind] / "tokenizer.json"))
    partial = assert_every_id_agrees(tokenizers[kind], reference)
    if kind in ("byte_level", "metaspace", "byte_level_added"):
        assert partial > 0  # the check covered parts of UTF-8 characters too


@pytest.mark.parametrize("kind", ["byte_level_added", "metaspace_added"])
def test_i2_added_tokens_are_their_own_text(tokenizers, tokenizer_dirs, kind):
    tok = tokenizers[kind]
    reference = Tokenizer.from_file(str(tokenizer_dirs[kind] / "tokenizer.json"))
    for word in ADDED_WORDS:
        token_id = tok.token_id(word)
        assert tok.encode(word) == [token_id]
        assert tok.token_label(token_id) == word and tok.token_bytes(token_id) == word.encode()
    text = "Say đem, café and hello there <think>"
    ids = tok.encode(text)
    assert tok.token_id("đem") in ids and tok.token_id("<think>") in ids
    stream = tok.stream()
    streamed = "".join(stream.feed(i) for i in ids) + stream.flush()
    if kind == "byte_level_added":  # tokenizers' own decode garbles "đem" here (#1996)
        assert streamed == text
    else:  # Metaspace puts "▁" before the "," after an added token: "đem ," is its own text
        assert streamed == reference.decode(ids) == text.replace(",", " ,")
    pieces = tok.pieces("đem")
    assert [(p.token, p.bytes, p.special) for p in pieces] == [("đem", "đem".encode(), False)]


def test_i2_added_special_token_label_is_its_text(tokenizers):
    tok = tokenizers["byte_level_added"]
    tool = tok.token_id("<|tool|>")
    assert tok.is_special(tool) and tok.token_label(tool) == "<|tool|>"
    assert tool not in tok.encode("<|tool|>")  # typed text stays text (I1)


@pytest.mark.slow
def test_i2_every_token_of_the_default_model_agrees(default_model_dir):
    config = json.loads((default_model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok = TextTokenizer(default_model_dir / "tokenizer.json", config)
    reference = Tokenizer.from_file(str(default_model_dir / "tokenizer.json"))
    assert reference.get_vocab_size(with_added_tokens=True) == 49_152
    assert assert_every_id_agrees(tok, reference) > 0
