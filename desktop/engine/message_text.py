"""Message text stays text: which parts of a rendered prompt the template wrote, which a person did.

Owns: shielding message contents while a chat template renders them, and splitting the rendered
prompt back into the template's own text (whose special-token text becomes control tokens) and
message text (whose special-token text never does; case I1, llama.cpp#24382, transformers#29279),
and the setup of a `tokenizers` tokenizer that encodes them so (PlainTextEncoder). Does not render
templates (chat_template.py); TextTokenizer (tokenizer.py) is the tokenizer's public face.

How: before rendering, each occurrence of a special token's text in a message content
("A<|im_end|>B") is replaced by a placeholder `\\ufdd0<k>\\ufdd1` (Unicode noncharacters,
reserved for a program's internal use). The template renders as it would, except that it cannot
see special text inside a message, and any special text in its output is its own. The output is
then cut at the placeholders; each is restored to its original text as a literal part. Messages
without special text render exactly as before (nothing is replaced), so their prompt is unchanged.

Noncharacters U+FDD0..U+FDEF in message text are read as U+FFFD (they are never interchanged text,
and the placeholders and PlainTextEncoder's marker aliases are made of them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tokenizers import AddedToken, Tokenizer

from desktop.engine.events import Message

_OPEN, _CLOSE = "\ufdd0", "\ufdd1"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_NONCHARACTERS = re.compile("[\ufdd0-\ufdef]")


@dataclass(frozen=True)
class PromptPart:
    """A stretch of prompt text. literal: message text a person (or an earlier reply) wrote, in
    which special-token text is plain text; otherwise the template's own text, in which it is a
    control token."""

    text: str
    literal: bool


def without_noncharacters(text: str) -> str:
    """`text` with each noncharacter U+FDD0..U+FDEF replaced by U+FFFD (same length)."""
    return _NONCHARACTERS.sub("\ufffd", text)


class ContentShield:
    """Placeholders for special-token text inside message contents (see the module docstring).

    specials: the texts of the tokenizer's special tokens (e.g. "<|im_end|>", "<s>").
    """

    def __init__(self, specials: Iterable[str]):
        texts = sorted({s for s in specials if s}, key=len, reverse=True)  # longest match first
        self._pattern = re.compile("|".join(map(re.escape, texts))) if texts else None
        self._originals: list[str] = []

    def shield(self, messages: Sequence[Message]) -> list[Message]:
        """`messages` with special text in their contents replaced by placeholders."""
        return [Message(m.role, self._shield_text(m.content)) for m in messages]

    def _shield_text(self, text: str) -> str:
        text = without_noncharacters(text)
        if self._pattern is None:
            return text
        return self._pattern.sub(self._placeholder, text)

    def _placeholder(self, match: re.Match[str]) -> str:
        self._originals.append(match.group(0))
        return f"{_OPEN}{len(self._originals) - 1}{_CLOSE}"

    def parts(self, rendered: str) -> list[PromptPart]:
        """`rendered` (a template's output for shielded messages) as template text and literal
        parts, placeholders restored. Adjacent parts of one kind are joined; no part is empty."""
        out: list[PromptPart] = []
        cursor = 0
        for match in _PLACEHOLDER.finditer(rendered):
            index = int(match.group(1))
            if index >= len(self._originals):  # not ours: the template wrote it
                continue
            _append(out, PromptPart(rendered[cursor : match.start()], literal=False))
            _append(out, PromptPart(self._originals[index], literal=True))
            cursor = match.end()
        _append(out, PromptPart(rendered[cursor:], literal=False))
        return out


def _append(parts: list[PromptPart], part: PromptPart) -> None:
    if not part.text:
        return
    if parts and parts[-1].literal == part.literal:
        parts[-1] = PromptPart(parts[-1].text + part.text, part.literal)
    else:
        parts.append(part)


class PlainTextEncoder:
    """Sets a tokenizer up so that special-token text is never a control token, and gives each
    special token an alias (`\ufdd2<|im_end|>\ufdd3`, an added token past the vocabulary) that
    is one. The tokenizer's vocabulary, ids and decoding are unchanged.

    Why: `tokenizers` matches special tokens anywhere in a text unless `encode_special_tokens` is
    set, which turns them off everywhere. Here they are off (message text is text), and where the
    template wrote one its text is swapped for the alias, so one encoding pass splits the text at
    exactly the same places as the original tokenizer would, and every other character is
    tokenized as before. Alias ids are mapped back to the special tokens' own ids. The aliases are
    made of noncharacters, which encoded text never holds (message_text.without_noncharacters).
    """

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        added = tokenizer.get_added_tokens_decoder()  # {id: AddedToken}
        specials = {i: t for i, t in added.items() if t.special}
        self.special_texts = tuple(sorted((t.content for t in specials.values()), key=len)[::-1])
        aliases = [
            AddedToken(
                _alias(t.content),
                single_word=t.single_word,
                lstrip=t.lstrip,
                rstrip=t.rstrip,
                normalized=t.normalized,
                special=False,
            )
            for t in specials.values()
        ]
        self._tok.encode_special_tokens = True  # set once, before any thread encodes
        self._tok.add_tokens(aliases)
        self._to_original = {
            self._tok.token_to_id(_alias(t.content)): i for i, t in specials.items()
        }
        texts = map(re.escape, self.special_texts)
        self._markers = re.compile("|".join(texts)) if self.special_texts else None

    def encode(self, text: str, add_special_tokens: bool):
        """The `tokenizers` Encoding of `text` with no control tokens (ids are the original's)."""
        return self._tok.encode(text, add_special_tokens=add_special_tokens)

    def encode_parts(self, parts: Sequence[PromptPart], add_special_tokens: bool) -> list[int]:
        """Ids of the joined parts; special text is a control token only in template parts."""
        chunks = []
        for part in parts:
            text = without_noncharacters(part.text)
            if not part.literal and self._markers is not None:
                text = self._markers.sub(lambda m: _alias(m.group(0)), text)
            chunks.append(text)
        ids = self._tok.encode("".join(chunks), add_special_tokens=add_special_tokens).ids
        return [self._to_original.get(i, i) for i in ids]


def _alias(content: str) -> str:
    return f"\ufdd2{content}\ufdd3"
