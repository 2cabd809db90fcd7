"""Write the tokenizer and generation files of a model folder, the way transformers.js reads them.

tokenizer.json (the fast tokenizer, nothing else: no SentencePiece tokenizer.model copy),
tokenizer_config.json (chat_template, bos/eos/pad, add_bos_token), special_tokens_map.json,
config.json and generation_config.json, whose eos_token_id lists every end-of-turn id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Special tokens that end a turn or a document in the families we export.
END_OF_TURN_TOKENS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "</s>",
)


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def end_of_turn_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a reply: the config's and generation config's eos ids, the tokenizer's
    eos token, and, for a chat model, the known end-of-turn special tokens that its chat template
    writes, plus `<|endoftext|>` (the document end these vocabularies share)."""
    ids: list[int] = []
    ids += _as_list(getattr(model.config, "eos_token_id", None))
    gen = getattr(model, "generation_config", None)
    ids += _as_list(getattr(gen, "eos_token_id", None))
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # named templates
        template = " ".join(template.values())
    if template:
        added = {tok.content: idx for idx, tok in tokenizer.added_tokens_decoder.items()}
        ends = [t for t in END_OF_TURN_TOKENS if t in template or t == "<|endoftext|>"]
        ids += [added[t] for t in ends if t in added]
    return sorted(set(ids))


def write_generation_files(model: Any, tokenizer: Any, out: Path) -> None:
    """config.json and generation_config.json, with the eos list and special ids consistent."""
    eos = end_of_turn_ids(model, tokenizer)
    config = model.config.to_dict()
    config["eos_token_id"] = eos[0] if len(eos) == 1 else eos
    config["bos_token_id"] = tokenizer.bos_token_id
    config["pad_token_id"] = tokenizer.pad_token_id
    config.pop("quantization_config", None)
    config["torch_dtype"] = "float32"
    write_json(out / "config.json", config)
    generation = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": eos,
        "pad_token_id": tokenizer.pad_token_id,
        "do_sample": False,
    }
    gen = getattr(model, "generation_config", None)
    for key in ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty"):
        value = getattr(gen, key, None)
        if value is not None and gen is not None and key in gen.to_diff_dict():
            generation[key] = value
    write_json(out / "generation_config.json", generation)


def adds_bos(tokenizer: Any) -> bool:
    """Whether plain encoding (add_special_tokens=True) puts the BOS token first."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def write_tokenizer_files(tokenizer: Any, out: Path, *, max_length: int | None = None) -> None:
    """tokenizer.json, tokenizer_config.json (chat_template inline, add_bos_token as the
    tokenizer.json post-processor behaves, model_max_length) and special_tokens_map.json."""
    tokenizer.save_pretrained(str(out), legacy_format=False)
    for extra in ("tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json"):
        (out / extra).unlink(missing_ok=True)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    jinja = out / "chat_template.jinja"
    if jinja.is_file():
        config["chat_template"] = jinja.read_text(encoding="utf-8")
        jinja.unlink()
    elif getattr(tokenizer, "chat_template", None):
        config["chat_template"] = tokenizer.chat_template
    config["add_bos_token"] = adds_bos(tokenizer)
    if max_length:
        config["model_max_length"] = max_length
    write_json(config_path, config)
