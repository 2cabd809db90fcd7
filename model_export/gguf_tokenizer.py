"""The tokenizer of a GGUF file, rebuilt from the GGUF's own metadata, and its check.

transformers 4.57 derives a wrong tokenizer from a llama-architecture GGUF whose vocabulary is
byte-level BPE (`tokenizer.ggml.model == "gpt2"`, e.g. SmolLM2): a SentencePiece normalizer and
decoder chain (Replace '▁', byte fallback) that splits a 44-token prompt into 116 ids and shows
a literal 'Ġ'; eos `<|im_start|>` instead of `<|im_end|>`; no pad token; a BOS added although the
GGUF says add_bos_token=False (two `<|im_start|>`, cases B1); and a 98 MB tokenizer.model copy.
Here the tokenizer is built from the GGUF's vocabulary, merges, token types, special ids, add_bos
flag, chat template and pre-tokenizer name, the way llama.cpp's llama-vocab.cpp reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ExportError

# llama.cpp's `tokenizer.ggml.pre` names -> the Hugging Face pre-tokenizer that splits the same way
# (llama.cpp src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_*): "smollm" splits digits one by one,
# then applies GPT-2's regex; "gpt-2"/"default" is GPT-2's regex alone.
_GPT2_PRE = {
    "type": "ByteLevel",
    "add_prefix_space": False,
    "trim_offsets": True,
    "use_regex": True,
}
PRE_TOKENIZERS: dict[str, dict] = {
    "smollm": {
        "type": "Sequence",
        "pretokenizers": [{"type": "Digits", "individual_digits": True}, _GPT2_PRE],
    },
    "gpt-2": _GPT2_PRE,
    "default": _GPT2_PRE,
}
TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED = 3, 4


def read_gguf_tokenizer_fields(path: Path) -> dict[str, Any]:
    """The `tokenizer.*` metadata of a GGUF file as plain Python values."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}


def build_tokenizer_json(fields: dict[str, Any]) -> dict:
    """A tokenizer.json document (dict) for a byte-level BPE GGUF vocabulary.

    Raises `ExportError` for a vocabulary model or pre-tokenizer this module does not know.
    """
    model_kind = fields.get("tokenizer.ggml.model")
    pre = fields.get("tokenizer.ggml.pre", "default")
    if model_kind != "gpt2" or pre not in PRE_TOKENIZERS:
        raise ExportError(
            f"unsupported GGUF tokenizer (model '{model_kind}', pre-tokenizer '{pre}'): "
            f"supported is byte-level BPE with pre-tokenizer {', '.join(PRE_TOKENIZERS)}"
        )
    tokens: list[str] = list(fields["tokenizer.ggml.tokens"])
    types: list[int] = list(fields["tokenizer.ggml.token_type"])
    added = [
        {
            "id": i,
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, (tok, kind) in enumerate(zip(tokens, types, strict=True))
        if kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": _post_processor(fields, tokens),
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {tok: i for i, tok in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in fields["tokenizer.ggml.merges"]],
        },
    }


def _post_processor(fields: dict[str, Any], tokens: list[str]) -> dict:
    """ByteLevel offsets only; a BOS template only when the GGUF says add_bos_token=True."""
    byte_level = {
        "type": "ByteLevel",
        "add_prefix_space": True,
        "trim_offsets": False,
        "use_regex": True,
    }
    bos_id = fields.get("tokenizer.ggml.bos_token_id")
    if not fields.get("tokenizer.ggml.add_bos_token", False) or bos_id is None:
        return byte_level
    bos = tokens[int(bos_id)]
    template = {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
        ],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": bos, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [int(bos_id)], "tokens": [bos]}},
    }
    return {"type": "Sequence", "processors": [byte_level, template]}


def tokenizer_from_gguf(path: Path) -> Any:
    """A transformers fast tokenizer equal to the GGUF's own: vocabulary, merges, specials
    (bos/eos/pad/unk from the GGUF ids), add_bos_token and chat template."""
    import json

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    fields = read_gguf_tokenizer_fields(path)
    tokens = fields["tokenizer.ggml.tokens"]
    backend = Tokenizer.from_str(json.dumps(build_tokenizer_json(fields)))

    def token(key: str) -> str | None:
        value = fields.get(f"tokenizer.ggml.{key}_token_id")
        return None if value is None else tokens[int(value)]

    eos = token("eos")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=token("bos"),
        eos_token=eos,
        unk_token=token("unknown"),
        pad_token=token("padding") or eos,
        chat_template=fields.get("tokenizer.chat_template"),
        clean_up_tokenization_spaces=False,
    )


def vocabulary_consistency(tokenizer: Any, fields: dict[str, Any]) -> dict:
    """Check the tokenizer against the GGUF vocabulary: every ordinary vocabulary entry whose
    bytes are valid UTF-8 and form one pre-token must encode to exactly its own id.

    Returns {"checked", "mismatches", "examples"}; a correct tokenizer has no mismatches except
    entries that BPE merges cannot reach.
    """
    backend = tokenizer.backend_tokenizer
    types = fields["tokenizer.ggml.token_type"]
    checked, mismatches, examples = 0, 0, []
    for idx, tok in enumerate(fields["tokenizer.ggml.tokens"]):
        if types[idx] != 1:
            continue
        text = backend.decode([idx], skip_special_tokens=False)
        if "\ufffd" in text or len(backend.pre_tokenizer.pre_tokenize_str(text)) != 1:
            continue
        checked += 1
        ids = backend.encode(text, add_special_tokens=False).ids
        if ids != [idx]:
            mismatches += 1
            if len(examples) < 5:
                examples.append({"id": idx, "token": tok, "encoded": ids})
    return {"checked": checked, "mismatches": mismatches, "examples": examples}


#: Texts whose ids must round-trip exactly (emoji over several byte tokens, CJK, tabs, spaces).
ROUND_TRIP_TEXTS = (
    "Hello world",
    "héllo 😀 🤗",
    "你好，世界 かな 한국어",
    "\tTabs\t\tand  double  spaces\n\nnew lines",
    "  hello",
    "Numbers 1234567890 and 3.14",
)


def check_gguf_tokenizer(folder: Path, gguf_path: Path) -> dict:
    """Check the tokenizer files written to `folder` against the GGUF they came from.

    Loads them as any consumer would (tokenizer.json + tokenizer_config.json), then checks:
    every vocabulary entry encodes to its own id, the round-trip texts decode unchanged with no
    'Ġ' or U+FFFD, and a chat-templated prompt starts with exactly one BOS (cases B1).
    Raises `ExportError` on any fault; returns the figures for the report.
    """
    from transformers import PreTrainedTokenizerFast

    fields = read_gguf_tokenizer_fields(gguf_path)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    vocab = vocabulary_consistency(tokenizer, fields)
    if vocab["mismatches"]:
        raise ExportError(f"tokenizer disagrees with the GGUF vocabulary: {vocab['examples'][:2]}")
    texts = {}
    for text in ROUND_TRIP_TEXTS:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        back = tokenizer.decode(ids, skip_special_tokens=True)
        if back != text or "Ġ" in back or "\ufffd" in back:
            raise ExportError(f"tokenizer does not round-trip {text!r}: got {back!r}")
        texts[text] = ids
    result: dict = {"vocabulary": vocab, "round_trip_ids": texts}
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": "Hi"}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(prompt)["input_ids"]
        if tokenizer.bos_token_id is not None and ids[:2] == [tokenizer.bos_token_id] * 2:
            raise ExportError("the templated prompt starts with two BOS tokens")
        result["templated_prompt_tokens"] = len(ids)
    return result
