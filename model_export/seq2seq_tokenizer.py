"""A fast tokenizer (one tokenizer.json) for every encoder-decoder model we export.

T5 and BART come with fast tokenizers in transformers. Marian (Helsinki-NLP opus-mt) comes only as
the slow `MarianTokenizer`: two SentencePiece models (source.spm, target.spm) and one shared
vocab.json that maps pieces to model ids. The app encodes the user's text with the source model and
decodes reply ids to pieces, so one Unigram model suffices: vocab.json pieces in id order,
scored by source.spm (pieces it lacks get a score it never prefers), with source.spm's normalizer,
a Metaspace pre-tokenizer and decoder, `</s>` appended, and `>>xx<<` language codes kept whole.
This is the conversion transformers.js's opus-mt models use (Xenova's conversion scripts).

Limit: a source.spm piece missing from vocab.json becomes `<unk>` in the slow tokenizer but is
split into smaller pieces here; MarianTokenizer with separate vocabularies is refused.
"""

from __future__ import annotations

import re

from model_export.errors import ExportError

LANGUAGE_CODE = re.compile(r"^>>.+<<$")


def fast_tokenizer(tokenizer):
    """`tokenizer` itself when fast; a converted PreTrainedTokenizerFast for MarianTokenizer.

    Raises ExportError for any other slow tokenizer.
    """
    if getattr(tokenizer, "is_fast", False):
        return tokenizer
    if type(tokenizer).__name__ == "MarianTokenizer":
        return marian_fast_tokenizer(tokenizer)
    raise ExportError(
        f"{type(tokenizer).__name__} is a slow tokenizer with no tokenizer.json and no converter "
        "here; the app needs a fast tokenizer"
    )


def marian_fast_tokenizer(slow):
    """Convert a slow MarianTokenizer (shared vocabulary) into a PreTrainedTokenizerFast."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    if getattr(slow, "separate_vocabs", False):
        raise ExportError(
            "Marian tokenizers with separate source and target vocabularies are not supported"
        )
    proto = import_protobuf().ModelProto()
    with open(slow.spm_files[0], "rb") as fh:
        proto.ParseFromString(fh.read())
    scores = {p.piece: p.score for p in proto.pieces}
    floor = min(scores.values()) - 10.0
    by_id = sorted(slow.encoder.items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ExportError("the Marian vocab.json ids are not 0..n-1; cannot convert it")
    vocab = [(piece, scores.get(piece, floor)) for piece, _ in by_id]
    tok = Tokenizer(models.Unigram(vocab, unk_id=slow.unk_token_id, byte_fallback=False))
    tok.normalizer = SpmConverter.normalizer(None, proto)  # uses no state: charsmap, strip, spaces
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    specials = [slow.eos_token, slow.unk_token, slow.pad_token]
    codes = [piece for piece, _ in by_id if LANGUAGE_CODE.match(piece)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(code, normalized=False, special=False) for code in codes])
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {slow.eos_token}",
        pair=f"$A $B {slow.eos_token}",
        special_tokens=[(slow.eos_token, slow.eos_token_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=slow.eos_token,
        unk_token=slow.unk_token,
        pad_token=slow.pad_token,
        model_max_length=slow.model_max_length,
        model_input_names=["input_ids", "attention_mask"],
    )
