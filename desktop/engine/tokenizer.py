"""Text <-> token ids: encoding with byte spans, exactly-one-BOS prompts, and streaming decoding.

Owns: the `tokenizers` library, each token's raw bytes, and an incremental detokenizer that never
shows part of a UTF-8 character (cases A1, A2) and keeps SentencePiece spaces right (A3 to A7).
Text is text (case I1): `encode` and `pieces` never turn special-token text ("<|im_end|>") into a
control token, and `encode_prompt` does so only in the template's own parts of a prompt.
Does not know about models, sessions or chat templates (see chat_template.py).

Each token's text and bytes come from the tokenizer's own decoding (case I2, tokenizers#1915):
`decode([anchor, id])` less the anchor's text, so the token keeps the leading space a decode of it
alone would drop (A3, A4) and no joining bug of a decoder applies (A5: Metaspace turns "▁in▁the" +
"▁house" into "inthe house", still in tokenizers 0.23). Where that decode shows U+FFFD (the token
is part of a UTF-8 character), the bytes it stands for are read from the decoder description
(ByteLevel's byte alphabet, ByteFallback's `<0xNN>`) and kept only if they decode to exactly that
text. Added tokens (special or not) are their own text: tokenizers before the #1996 fix runs them
through the ByteLevel decoder, which turns an added "đem" into "\\x11em". The reply is the UTF-8
stream of the tokens' bytes.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from desktop.engine.errors import ModelFolderError
from desktop.engine.message_text import PlainTextEncoder, PromptPart, without_noncharacters
from desktop.engine.token_bytes import BYTE_NOTATION, DecoderProgram, label_for_bytes

__all__ = ["StreamDecoder", "TextTokenizer", "TokenPiece", "label_for_bytes", "well_formed"]


def well_formed(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD. Bytes that are not UTF-8 reach Python
    from argv and stdin as lone surrogates (U+DC80..U+DCFF, PEP 383's surrogateescape), and a
    pasted string can hold one; neither tokenizers nor SQLite accept them (QA 3, defect 2)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass(frozen=True)
class TokenPiece:
    """One token of a text. token: its text alone (byte notation such as `<F0 9F>` for part of a
    UTF-8 character). bytes: its raw bytes. start/end: character offsets into the input text.
    special: a control token (BOS, EOS, role markers)."""

    id: int
    token: str
    bytes: bytes
    start: int
    end: int
    special: bool


class TextTokenizer:
    """A model's tokenizer: tokenizer.json plus the special tokens named in tokenizer_config.json.

    Raises ModelFolderError naming tokenizer.json when the tokenizers library rejects it (I14);
    manifest.py has already checked that the files read as JSON of the right shape.
    """

    def __init__(self, tokenizer_json: Path | str, tokenizer_config: dict | None = None):
        try:
            source = Path(tokenizer_json).read_text(encoding="utf-8")
            self._tok = Tokenizer.from_str(source)
        except (OSError, UnicodeDecodeError) as err:
            raise ModelFolderError(f"{tokenizer_json} could not be read: {err}") from err
        except Exception as err:  # tokenizers raises a bare Exception for a file it rejects
            raise ModelFolderError(
                f"{tokenizer_json} could not be read by the tokenizers library: {err}"
            ) from err
        spec = json.loads(source)
        self.config = tokenizer_config or {}
        self._program = DecoderProgram(spec.get("decoder"))
        self._special_ids = {
            t["id"] for t in spec.get("added_tokens", []) if t.get("special", False)
        }
        self._dummy_prefix = _prepends_dummy_prefix(spec)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.bos_id = self.token_id(_token_content(self.config.get("bos_token")))
        with_special = self._tok.encode("a", add_special_tokens=True).ids
        plain = self._tok.encode("a", add_special_tokens=False).ids
        self.adds_bos = self.bos_id is not None and with_special[:1] == [self.bos_id] != plain[:1]
        self._bytes_cache: dict[int, bytes] = {}
        self._added = {i: t.content for i, t in self._tok.get_added_tokens_decoder().items()}
        self._plain = PlainTextEncoder(
            self._tok
        )  # from here on, encoding never matches special text
        self.special_texts = self._plain.special_texts
        self._anchor = self._find_anchor()

    # ---- vocabulary -------------------------------------------------------------------------
    def token_id(self, token: str | None) -> int | None:
        return None if token is None else self._tok.token_to_id(token)

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes token `token_id` adds to a text, as the tokenizer decodes it in context
        (special and other added tokens: their written form; see the module docstring, I2)."""
        cached = self._bytes_cache.get(token_id)
        if cached is not None:
            return cached
        added = self._added.get(token_id)
        if added is not None:
            raw = added.encode("utf-8")
        elif self._tok.id_to_token(token_id) is None:
            raw = b""
        else:
            raw = self._decoded_bytes(token_id)
        self._bytes_cache[token_id] = raw
        return raw

    def _decoded_bytes(self, token_id: int) -> bytes:
        anchor_ids, anchor_text = self._anchor
        text = self._tok.decode([*anchor_ids, token_id], skip_special_tokens=False)
        if anchor_ids and text.startswith(anchor_text):
            text = text[len(anchor_text) :]
        else:
            text = self._tok.decode([token_id], skip_special_tokens=False)
        if "\ufffd" in text and self._program.supported:
            piece = self._tok.id_to_token(token_id)
            recovered = self._program.token_bytes(piece)
            if recovered.decode("utf-8", "replace") == text:
                return recovered
        return text.encode("utf-8")

    def token_label(self, token_id: int) -> str:
        """The token's text alone, for display (`<F0 9F>` for part of a character)."""
        return label_for_bytes(self.token_bytes(token_id))

    def _find_anchor(self) -> tuple[list[int], str]:
        """Ids that decode to a plain text of their own, put before a token so that the decoder
        treats it as a token inside a text (no leading space stripped). ([], "") if none."""
        for word in "ax1.etaoinshrdlu":  # common first, then letters any alphabet has
            ids = self._plain.encode(word, add_special_tokens=False).ids
            text = self._tok.decode(ids, skip_special_tokens=False)
            if ids and text == word:
                return ids, text
        return [], ""

    # ---- encoding ---------------------------------------------------------------------------
    def pieces(self, text: str, add_special_tokens: bool = False) -> list[TokenPiece]:
        """Tokenize `text` with character spans. A text starting with a space keeps it (A6).
        Text is text: special-token text in it ("<|im_end|>") is plain tokens (I1)."""
        text = without_noncharacters(well_formed(text))
        shift = 1 if self._dummy_prefix and text.startswith(" ") else 0
        enc = self._plain.encode(" " * shift + text, add_special_tokens=add_special_tokens)
        out = []
        for token_id, (start, end) in zip(enc.ids, enc.offsets, strict=True):
            out.append(
                TokenPiece(
                    id=token_id,
                    token=self.token_label(token_id),
                    bytes=self.token_bytes(token_id),
                    start=max(0, start - shift),
                    end=max(0, end - shift),
                    special=self.is_special(token_id),
                )
            )
        return out

    def prompt_pieces(self, text: str, ids: Sequence[int]) -> list[TokenPiece]:
        """The tokens of a whole prompt as it was sent (`ids`: PromptInfo.prompt_ids; its control
        tokens are special, a message's special-token text is not, I1), with character spans
        into its `text` (PromptInfo.prompt_text). Spans come from finding each token's bytes in
        order in the text's UTF-8: a SentencePiece token's leading space may stand for no
        character, and a BOS the engine added covers none."""
        data = text.encode("utf-8")
        char_of = [i for i, ch in enumerate(text) for _ in ch.encode("utf-8")] + [len(text)]
        out, cursor = [], 0
        for token_id in ids:
            raw = self.token_bytes(token_id)
            size = 0
            if raw and data.startswith(raw, cursor):
                size = len(raw)
            elif raw[:1] == b" " and len(raw) > 1 and data.startswith(raw[1:], cursor):
                size = len(raw) - 1
            start = char_of[cursor]
            end = char_of[cursor + size - 1] + 1 if size else start
            out.append(
                TokenPiece(
                    id=token_id,
                    token=self.token_label(token_id),
                    bytes=raw,
                    start=start,
                    end=end,
                    special=self.is_special(token_id),
                )
            )
            cursor += size
        return out

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of a plain text (A6: a leading space survives the round trip). Special-token
        text in it is plain tokens (I1); add_special_tokens: the post-processor's BOS/EOS."""
        text = without_noncharacters(well_formed(text))
        shift = " " if self._dummy_prefix and text.startswith(" ") else ""
        return self._plain.encode(shift + text, add_special_tokens=add_special_tokens).ids

    def encode_prompt(
        self, prompt: str | Sequence[PromptPart], rendered_by_template: bool
    ) -> list[int]:
        """Ids of a whole prompt with exactly one BOS when the model uses one (case B1).

        prompt: a template's output as parts (message_text.py): special-token text in the
        template's own parts becomes control tokens, in literal parts (message text) it stays
        plain text (I1); the whole is encoded in one pass, so ordinary text is tokenized exactly
        as encoding the joined string would. A plain string counts as one part: the template's
        own text when rendered_by_template, else literal text.
        A template's output already has its control tokens: it is encoded without the
        tokenizer's own additions, then given a BOS only when it lacks one. A plain text (no
        template, e.g. seq2seq input) gets the tokenizer's additions (T5's `</s>`, BART's `<s>`).
        """
        if isinstance(prompt, str):
            prompt = [PromptPart(prompt, literal=not rendered_by_template)]
        parts = [PromptPart(well_formed(part.text), part.literal) for part in prompt]
        ids = self._plain.encode_parts(parts, add_special_tokens=not rendered_by_template)
        bos = self.bos_id
        if bos is not None and self.adds_bos and ids[:1] != [bos]:
            ids = [bos, *ids]
        while bos is not None and ids[:2] == [bos, bos]:
            ids = ids[1:]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` as a reply shows it (special tokens left out)."""
        stream = self.stream()
        return "".join(stream.feed(i) for i in ids) + stream.finish()

    def stream(self) -> StreamDecoder:
        return StreamDecoder(self)


class StreamDecoder:
    """Incremental detokenizer: `feed(id)` returns the text the id completes ("" while a UTF-8
    character is incomplete), `finish()` the end (U+FFFD for a cut character, I3). The join of all
    returned chunks equals `decode(ids)` (A1 to A5).
    Bytes that can never be UTF-8 (a random model's output) show as `<C3 28>`, not U+FFFD.
    """

    def __init__(self, tokenizer: TextTokenizer):
        self._tok = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors=BYTE_NOTATION)
        self._strip = tokenizer._program.strip_leading
        self._started = False

    def feed(self, token_id: int) -> str:
        if self._tok.is_special(token_id):
            return ""
        raw = self._tok.token_bytes(token_id)
        if not self._started and raw:
            self._started = True
            raw = raw[_leading_spaces(raw, self._strip) :]
        return self._utf8.decode(raw)

    @property
    def pending(self) -> bool:
        """True while the bytes fed so far end inside a UTF-8 character."""
        return bool(self._utf8.getstate()[0])

    def finish(self) -> str:
        """End of stream: "" or, when the text was cut inside a UTF-8 character (a token limit,
        Stop, an error), one U+FFFD, so the cut shows and the joined chunks equal the tokenizer's
        decode of all the ids (case I3, TGI#333). The stream can then start again."""
        cut = "\ufffd" if self.pending else ""
        self._utf8.reset()
        return cut

    flush = finish


def _leading_spaces(raw: bytes, limit: int) -> int:
    count = 0
    while count < limit and raw[count : count + 1] == b" ":
        count += 1
    return count


def _token_content(value: object) -> str | None:
    """tokenizer_config.json writes special tokens as a string or as {"content": ...}."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _prepends_dummy_prefix(spec: dict) -> bool:
    """True when a Metaspace pre-tokenizer adds SentencePiece's "▁" only to texts that do not
    already start with a space; encoding " " + text then keeps that space through decoding (A6)."""
    pre = spec.get("pre_tokenizer") or {}
    candidates: Sequence[dict] = pre.get("pretokenizers", [pre]) if pre else []
    for item in candidates:
        if item.get("type") == "Metaspace":
            scheme = item.get("prepend_scheme")
            if scheme is None:
                return bool(item.get("add_prefix_space", True))
            return scheme in ("always", "first")
    return False
