"""The bytes behind a token, and how raw bytes are shown.

Owns: the decoder description of a tokenizer.json read as a small program (ByteLevel's byte
alphabet, ByteFallback's `<0xNN>`, Replace, Metaspace, Strip, WordPiece, BPEDecoder), used only to
recover the bytes behind a token whose decode shows U+FFFD (tokenizer.py checks the result against
that decode, case I2), and how many leading spaces a full decode drops (A4); the display of raw
bytes that are not UTF-8 as `<F0 9F>` (never U+FFFD). Knows no `tokenizers` objects.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

_KNOWN_DECODERS = {
    "ByteLevel",
    "ByteFallback",
    "Fuse",
    "Replace",
    "Metaspace",
    "Strip",
    "WordPiece",
    "BPEDecoder",
}
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
BYTE_NOTATION = "tokenglass-byte-notation"
"""Codec error handler name: invalid UTF-8 bytes decode to `<C3 28>`."""


def _byte_notation(err: UnicodeError) -> tuple[str, int]:
    """Codec error handler: invalid UTF-8 bytes shown as `<C3 28>`, never as U+FFFD."""
    assert isinstance(err, UnicodeDecodeError)
    bad = err.object[err.start : err.end]
    return "<" + " ".join(f"{b:02X}" for b in bad) + ">", err.end


codecs.register_error(BYTE_NOTATION, _byte_notation)


@lru_cache(maxsize=1)
def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's printable alphabet for bytes, inverted (source: openai/gpt-2 src/encoder.py)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def label_for_bytes(raw: bytes) -> str:
    """Display text of raw bytes: valid UTF-8 as text, other bytes as `<F0 9F>` (never U+FFFD)."""
    parts: list[str] = []
    while raw:
        try:
            parts.append(raw.decode("utf-8"))
            break
        except UnicodeDecodeError as err:
            parts.append(raw[: err.start].decode("utf-8"))
            bad_end = err.end
            while bad_end < len(raw):  # group a run of undecodable bytes into one <..>
                try:
                    raw[bad_end:].decode("utf-8")
                    break
                except UnicodeDecodeError as rest:
                    if rest.start != 0:
                        break
                    bad_end += rest.end
            parts.append("<" + " ".join(f"{b:02X}" for b in raw[err.start : bad_end]) + ">")
            raw = raw[bad_end:]
    return "".join(parts)


class DecoderProgram:
    """The bytes behind a token whose decode shows U+FFFD, from the tokenizer.json `decoder`
    description (TextTokenizer.token_bytes checks them against the tokenizer's decode).

    strip_leading: how many leading spaces the full decode drops at the start of a text
    (Metaspace with a prepend scheme, Strip(start=n), WordPiece).
    """

    def __init__(self, spec: dict | None):
        self.steps: list[dict] = []
        self.supported = True
        self.strip_leading = 0
        self._flatten(spec)

    def _flatten(self, spec: dict | None) -> None:
        if spec is None:
            return
        kind = spec.get("type")
        if kind == "Sequence":
            for sub in spec.get("decoders", []):
                self._flatten(sub)
            return
        prepends = spec.get("prepend_scheme", "always") != "never"
        if kind == "Metaspace" and prepends and spec.get("add_prefix_space", True):
            self.strip_leading = max(self.strip_leading, 1)
        if kind == "Strip" and spec.get("content", " ") == " ":
            self.strip_leading = max(self.strip_leading, int(spec.get("start", 0)))
        if kind == "WordPiece":
            self.strip_leading = max(self.strip_leading, 1)
        if kind not in _KNOWN_DECODERS:
            self.supported = False
        self.steps.append(spec)

    def token_bytes(self, piece: str) -> bytes:
        text = piece
        for step in self.steps:
            kind = step["type"]
            if kind == "ByteFallback":
                match = _BYTE_FALLBACK.match(text)
                if match:
                    return bytes([int(match.group(1), 16)])
            elif kind == "Replace":
                pattern = step["pattern"]
                if "String" in pattern:
                    text = text.replace(pattern["String"], step["content"])
                else:
                    text = re.sub(pattern["Regex"], step["content"], text)
            elif kind == "Metaspace":
                text = text.replace(step.get("replacement", "▁"), " ")
            elif kind == "ByteLevel":
                table = _byte_level_decoder()
                return b"".join(
                    bytes([table[c]]) if c in table else c.encode("utf-8") for c in text
                )
            elif kind == "WordPiece":
                prefix = step.get("prefix", "##")
                text = text[len(prefix) :] if text.startswith(prefix) else " " + text
            elif kind == "BPEDecoder":
                text = text.replace(step.get("suffix", "</w>"), " ")
        return text.encode("utf-8")
