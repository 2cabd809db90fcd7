"""onnxruntime-genai's model folder layout, read into the words of the onnx-community layout.

Owns: `genai_config.json` (written by onnxruntime-genai's model builder and shipped with many
published ONNX models), with the graph at the folder's top level (`model.decoder.filename`)
beside tokenizer.json, tokenizer_config.json and often chat_template.jinja, and no config.json or
generation_config.json. `read_genai_folder` turns it into what manifest.py reads from those two
files: a config dict (head counts, sizes, context length, special ids), a generation dict (the
`search` defaults) and the graph file. Does not open the graph or know what its names mean
(manifest.describe_graph does); knows nothing of other layouts.

Source of the format: the genai_config.json that onnxruntime-genai 0.10's model builder
(`python -m onnxruntime_genai.models.builder`) writes, which tests/engine/test_genai_folder.py
builds and reads.

Every fault raises `ModelFolderError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from desktop.engine.errors import ModelFolderError

CONFIG_FILE = "genai_config.json"

#: genai's I/O name fields -> the names Tokenglass's graphs use (the builder's defaults);
#: `%d` is the layer in genai's patterns.
EXPECTED_NAMES = {
    ("inputs", "input_ids"): "input_ids",
    ("inputs", "attention_mask"): "attention_mask",
    ("inputs", "position_ids"): "position_ids",
    ("inputs", "past_key_names"): "past_key_values.%d.key",
    ("inputs", "past_value_names"): "past_key_values.%d.value",
    ("outputs", "logits"): "logits",
    ("outputs", "present_key_names"): "present.%d.key",
    ("outputs", "present_value_names"): "present.%d.value",
}

#: `search` keys that mean what generation_config.json's keys of the same name mean.
SEARCH_KEYS = ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty")

#: genai `model.decoder` keys -> config.json keys (what manifest.empty_cache_shape reads).
DECODER_KEYS = {
    "num_key_value_heads": "num_key_value_heads",
    "num_attention_heads": "num_attention_heads",
    "head_size": "head_dim",
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers",
}


@dataclass(frozen=True)
class GenaiFolder:
    """A genai folder in onnx-community terms. config: config.json's keys (model_type,
    head counts, head_dim, hidden_size, max_position_embeddings in tokens, bos/eos/pad ids);
    generation: generation_config.json's keys (eos_token_id, the search defaults, and
    max_length in tokens); graph: the decoder graph file; share_buffer: the config's
    `search.past_present_share_buffer` (past and present may be one buffer)."""

    config: dict
    generation: dict
    graph: Path
    share_buffer: bool


def is_genai_folder(path: Path) -> bool:
    """Whether `path` is laid out for onnxruntime-genai (genai_config.json, no config.json)."""
    return (path / CONFIG_FILE).is_file() and not (path / "config.json").is_file()


def read_genai_folder(path: Path) -> GenaiFolder:
    """Read `path`/genai_config.json. Raises ModelFolderError when the file is not valid JSON,
    describes no decoder graph or one that is missing (encoder-decoder and vision genai
    models are not read), or names inputs and outputs other than EXPECTED_NAMES."""
    file = path / CONFIG_FILE
    try:
        spec = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{file} is not valid JSON: {err}") from err
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict):
        raise ModelFolderError(f"{file} has no model section.")
    decoder = model.get("decoder")
    if not isinstance(decoder, dict) or not isinstance(decoder.get("filename"), str):
        raise ModelFolderError(f"{file} describes no decoder graph (model.decoder.filename).")
    if any(key in model for key in ("encoder", "vision", "speech", "embedding")):
        raise ModelFolderError(
            f"{file} describes a model with more than a decoder ({model.get('type')}); "
            "Tokenglass reads decoder-only onnxruntime-genai folders."
        )
    graph = path / decoder["filename"]
    if not graph.is_file():
        raise ModelFolderError(f"{file} names the graph {decoder['filename']}, which is missing.")
    _check_names(file, decoder)
    search = spec.get("search") if isinstance(spec.get("search"), dict) else {}
    return GenaiFolder(
        config=_config(model, decoder),
        generation=_generation(model, search),
        graph=graph,
        share_buffer=search.get("past_present_share_buffer") is True,
    )


def _check_names(file: Path, decoder: dict) -> None:
    for (group, key), expected in EXPECTED_NAMES.items():
        names = decoder.get(group, {})
        value = names.get(key, expected) if isinstance(names, dict) else expected
        if value != expected:
            raise ModelFolderError(
                f"{file} names {group} {key} {value!r}; Tokenglass reads graphs whose "
                f"{key} is {expected!r} (the onnx-community and genai builder names)."
            )


def _config(model: dict, decoder: dict) -> dict:
    config = {ours: decoder[theirs] for theirs, ours in DECODER_KEYS.items() if theirs in decoder}
    config["model_type"] = model.get("type", "unknown")
    if isinstance(model.get("context_length"), int):
        config["max_position_embeddings"] = model["context_length"]
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "vocab_size"):
        if key in model:
            config[key] = model[key]
    return config


def _generation(model: dict, search: dict) -> dict:
    generation = {key: search[key] for key in SEARCH_KEYS if key in search}
    if isinstance(search.get("max_length"), int):
        generation["max_length"] = search["max_length"]
    if "eos_token_id" in model:
        generation["eos_token_id"] = model["eos_token_id"]
    return generation
