"""Checks of a model folder's JSON files, and the token bans they declare.

Owns: reading a JSON object file (`read_json`), the types of the config.json and
generation_config.json values the engine relies on and the shape of tokenizer.json
(`check_shapes`), which file the chat template comes from and that it reads (`template_file`), and
generation_config's bad_words_ids / suppress_tokens / begin_suppress_tokens (`token_bans`, I8).
Every fault is a ModelFolderError naming the file (case I14): valid JSON of the wrong shape
included. manifest.py calls these while it reads a folder; nothing else needs them.
"""

from __future__ import annotations

import json
from pathlib import Path

from desktop.engine.errors import ModelFolderError
from desktop.engine.sampling import TokenBans

# config.json / generation_config.json keys whose type the engine relies on (case I14)
_SIZE_KEYS = (
    "vocab_size", "max_position_embeddings", "n_positions", "max_target_positions", "n_ctx",
    "num_attention_heads", "num_key_value_heads", "decoder_attention_heads", "num_heads",
    "n_head", "hidden_size", "d_model", "n_embd", "head_dim", "d_kv", "num_hidden_layers",
)  # fmt: skip
_ID_KEYS = (
    "eos_token_id", "bos_token_id", "pad_token_id", "decoder_start_token_id",
    "forced_bos_token_id", "forced_eos_token_id",
)  # fmt: skip
_NUMBER_KEYS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "max_new_tokens")


def check_shapes(path: Path, config: dict, generation: dict, tokenizer: dict) -> None:
    """Raise ModelFolderError naming the file when a value the engine reads has the wrong type
    (valid JSON of the wrong shape, I14). null stands for "not given" everywhere."""

    def is_int(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def is_ids(value: object) -> bool:
        return is_int(value) or (isinstance(value, list) and all(is_int(v) for v in value))

    def fault(file: str, key: str, value: object, wanted: str) -> ModelFolderError:
        return ModelFolderError(f"{path / file}: {key} should be {wanted}, got {value!r}.")

    for file, data in (("config.json", config), ("generation_config.json", generation)):
        for key, value in data.items():
            if value is None:
                continue
            if key in _SIZE_KEYS and not is_int(value):
                raise fault(file, key, value, "an integer")
            if key in _ID_KEYS and not is_ids(value):
                raise fault(file, key, value, "a token id or a list of token ids")
            if key in _NUMBER_KEYS and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise fault(file, key, value, "a number")
            if key == "model_type" and not isinstance(value, str):
                raise fault(file, key, value, "a string")
    model = tokenizer.get("model")
    added = tokenizer.get("added_tokens", [])
    if not isinstance(model, dict):
        raise fault("tokenizer.json", "model", model, "an object (the tokenizer's model)")
    if not isinstance(added, list) or not all(isinstance(t, dict) for t in added):
        raise fault("tokenizer.json", "added_tokens", added, "a list of objects")


def template_file(path: Path, tokenizer_config: dict) -> Path | None:
    """The file the chat template comes from (the order of chat_template.find_template), after
    checking that each template source present reads: UTF-8 text, or a `chat_template` string or
    list of named templates. Raises ModelFolderError naming the file."""
    _check_template(path / "tokenizer_config.json", tokenizer_config.get("chat_template"))
    json_file = path / "chat_template.json"
    if json_file.is_file():
        source = read_json(json_file, required=True)
        if "chat_template" not in source:
            raise ModelFolderError(f"{json_file} has no chat_template entry.")
        _check_template(json_file, source["chat_template"])
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        try:
            jinja.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ModelFolderError(f"{jinja} is not readable UTF-8 text: {err}") from err
        return jinja
    if json_file.is_file():
        return json_file
    has_template = tokenizer_config.get("chat_template") is not None
    return path / "tokenizer_config.json" if has_template else None


def _check_template(file: Path, value: object) -> None:
    named = isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("template"), str) for t in value
    )
    if value is not None and not isinstance(value, str) and not (named and value):
        raise ModelFolderError(
            f"{file}: chat_template should be a string or a list of "
            '{"name": ..., "template": ...} objects.'
        )


def read_json(file: Path, *, required: bool) -> dict:
    if not file.is_file():
        if required:
            raise ModelFolderError(
                f"{file} is missing: this does not look like a model folder "
                "(expected config.json, tokenizer.json and onnx/*.onnx)."
            )
        return {}
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{file} is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise ModelFolderError(f"{file} should hold a JSON object, not {type(value).__name__}.")
    return value


def token_bans(
    path: Path, config: dict, generation: dict, pad_id: int | None, eos_ids: frozenset[int]
) -> TokenBans:
    """The tokens a reply may not contain (I8), from generation_config.json (or config.json,
    where older models keep them). `pad_id`: an encoder-decoder model's pad token, never a
    reply token (opus-mt's configs ban it; CTranslate2 PR #865), unless it is also an end token.
    Raises ModelFolderError naming the file when a list has the wrong shape."""

    def read(key: str) -> tuple[object, Path]:
        if key in generation:
            return generation[key], path / "generation_config.json"
        return config.get(key), path / "config.json"

    def ids(value: object, file: Path, key: str) -> tuple[int, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ModelFolderError(f"{file}: {key} should be a list of token ids, got {value!r}.")
        return tuple(value)

    suppress, suppress_file = read("suppress_tokens")
    begin, begin_file = read("begin_suppress_tokens")
    bad, bad_file = read("bad_words_ids")
    if bad is not None and not isinstance(bad, list):
        raise ModelFolderError(f"{bad_file}: bad_words_ids should be a list of id lists.")
    words = [ids(w, bad_file, "each entry of bad_words_ids") for w in bad or []]
    always = list(ids(suppress, suppress_file, "suppress_tokens"))
    always += [w[0] for w in words if len(w) == 1]
    if pad_id is not None and pad_id not in eos_ids:
        always.append(pad_id)
    return TokenBans(
        always=tuple(dict.fromkeys(always)),
        first=ids(begin, begin_file, "begin_suppress_tokens"),
        sequences=tuple(w for w in words if len(w) > 1),
    )
