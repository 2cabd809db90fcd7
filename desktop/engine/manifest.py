"""A model folder read into one normalized description; the only module that knows layouts.

Owns: the onnx-community folder layout (config.json, generation_config.json, tokenizer.json,
tokenizer_config.json, onnx/*.onnx) for decoder-only models (`model*.onnx`) and encoder-decoder
models (`encoder_model*.onnx` + `decoder_model_merged*.onnx`, or the older `decoder_model*.onnx` +
`decoder_with_past_model*.onnx` pair), and the meaning of each graph's input and output names
(`GraphSpec`). Everything else reads `ModelManifest` and `GraphSpec` and never branches on the
architecture. Does not open ONNX Runtime sessions (session.py does) or tokenize.

Every fault raises `ModelFolderError` naming the file and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from desktop.engine.errors import ModelFolderError
from desktop.engine.folder_checks import check_shapes, template_file, token_bans
from desktop.engine.folder_checks import read_json as _read_json
from desktop.engine.sampling import TokenBans

# File-name suffix of a graph variant -> precision, most preferred first on CPU (smaller is faster
# for small models, which are bound by memory traffic and per-step overhead).
PRECISIONS: dict[str, str] = {
    "_q4": "int4",
    "_int8": "int8",
    "_quantized": "int8",
    "_uint8": "uint8",
    "": "fp32",
    "_q4f16": "int4-fp16",
    "_fp16": "fp16",
    "_bnb4": "bnb4",
}
# Optional, ours: {"title": "Dates to ISO 8601 (T5, trained here)"}, the name people see.
TITLE_FILE = "tokenglass.json"
_PAST = re.compile(r"^past_key_values\.(\d+)\.(?:(decoder|encoder)\.)?(key|value)$")
_PRESENT = re.compile(r"^present\.(\d+)\.(?:(decoder|encoder)\.)?(key|value)$")


@dataclass(frozen=True)
class ModelManifest:
    """What a model folder holds, normalized.

    kind: "decoder" or "encoder-decoder". graphs: role -> file, roles "decoder" (the graph that
    takes a KV cache; a merged graph also runs the first step), "decoder_first" (a no-cache first
    step graph, older pairs only) and "encoder". eos_ids: the union of end tokens from
    generation_config.json, config.json and the tokenizer (cases C1, C2). context_size: max
    positions (tokens). forced_bos_id: a token an encoder-decoder reply always starts with
    (BART's forced_bos_token_id), fed after the decoder start token. bans: tokens never
    generated (generation_config's bad_words_ids, suppress_tokens, begin_suppress_tokens; an
    encoder-decoder model's pad token, case I8). template_file: the file the chat template
    comes from (chat_template.jinja, chat_template.json or tokenizer_config.json), or None.
    title: the name to show people, from the optional tokenglass.json ({"title": ...}); else
    the folder's name.
    """

    path: Path
    name: str
    family: str
    kind: str
    precision: str
    size_bytes: int
    graphs: dict[str, Path]
    config: dict
    generation_config: dict
    tokenizer_json: Path
    tokenizer_config: dict
    context_size: int
    eos_ids: frozenset[int]
    bos_id: int | None
    decoder_start_id: int | None
    pad_id: int | None
    forced_bos_id: int | None = None
    template_file: Path | None = None
    bans: TokenBans = field(default_factory=TokenBans)
    title: str = ""


@dataclass(frozen=True)
class CacheSlot:
    """One KV-cache tensor: graph input `past` fed back from graph output `present`.

    cross: an encoder-decoder cross-attention cache (fixed after the first step).
    shape: the input's shape, symbolic axes as str (e.g. ["batch_size", 2, "past", 8]).
    """

    layer: int
    past: str
    present: str | None
    cross: bool
    shape: tuple[int | str, ...]
    dtype: str


@dataclass(frozen=True)
class GraphSpec:
    """The meaning of one graph's inputs and outputs, decided from their names (case D2).

    takes_cache: it has `past_key_values.*` inputs. use_cache_branch: name of the merged graph's
    boolean switch, or None. encoder_states/encoder_mask: the inputs fed from the encoder.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    slots: tuple[CacheSlot, ...] = field(default=())
    takes_cache: bool = False
    attention_mask: str | None = None
    position_ids: str | None = None
    use_cache_branch: str | None = None
    encoder_states: str | None = None
    encoder_mask: str | None = None
    self_presents: tuple[str, ...] = ()
    cross_presents: tuple[str, ...] = ()
    present_to_past: dict[str, str] = field(default_factory=dict)


def read_manifest(folder: str | Path) -> ModelManifest:
    """Read `folder` into a `ModelManifest`. Raises ModelFolderError naming the file and fault."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ModelFolderError(
            f"{path} is not a folder; a model folder holds config.json and onnx/."
        )
    config = _read_json(path / "config.json", required=True)
    generation = _read_json(path / "generation_config.json", required=False)
    tokenizer_config = _read_json(path / "tokenizer_config.json", required=False)
    tokenizer_json = path / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise ModelFolderError(
            f"{tokenizer_json} is missing: Tokenglass needs the model's tokenizer.json "
            "(a 'fast' tokenizer; re-export the model with model_export)."
        )
    tokenizer = _read_json(tokenizer_json, required=True)
    check_shapes(path, config, generation, tokenizer)
    template = template_file(path, tokenizer_config)
    graphs, suffix = _find_graphs(path)
    kind = "encoder-decoder" if "encoder" in graphs else "decoder"
    eos_ids = _end_tokens(config, generation, tokenizer, tokenizer_config)
    pad_id = _first_int(generation.get("pad_token_id", config.get("pad_token_id")))
    title = _read_json(path / TITLE_FILE, required=False).get("title")
    return ModelManifest(
        path=path,
        name=path.name,
        family=str(config.get("model_type", "unknown")),
        kind=kind,
        precision=PRECISIONS[suffix],
        size_bytes=sum(_graph_size(p) for p in graphs.values()),
        graphs=graphs,
        config=config,
        generation_config=generation,
        tokenizer_json=tokenizer_json,
        tokenizer_config=tokenizer_config,
        context_size=_context_size(config, tokenizer_config),
        eos_ids=eos_ids,
        bos_id=_first_int(generation.get("bos_token_id", config.get("bos_token_id"))),
        decoder_start_id=_first_int(
            generation.get("decoder_start_token_id", config.get("decoder_start_token_id"))
        ),
        pad_id=pad_id,
        forced_bos_id=_first_int(
            generation.get("forced_bos_token_id", config.get("forced_bos_token_id"))
        ),
        template_file=template,
        bans=token_bans(
            path, config, generation, pad_id if kind == "encoder-decoder" else None, eos_ids
        ),
        title=title if isinstance(title, str) and title.strip() else path.name,
    )


def describe_graph(
    file: Path, inputs: dict[str, tuple[tuple[int | str, ...], str]], outputs: list[str]
) -> GraphSpec:
    """Interpret a graph's I/O names: inputs name -> (shape, onnx type string), output names.

    Raises ModelFolderError when the graph lacks `input_ids` (or `encoder_hidden_states`-only
    decoders) or `logits`/`last_hidden_state`, or a past input has no matching present output.
    """
    names = tuple(inputs)
    if "input_ids" not in inputs:
        raise ModelFolderError(f"{file} has no input named input_ids; inputs are {list(names)}.")
    if "logits" not in outputs and "last_hidden_state" not in outputs:
        raise ModelFolderError(f"{file} has neither a logits nor a last_hidden_state output.")
    presents = {m.groups(): o for o in outputs if (m := _PRESENT.match(o))}
    slots = []
    for name in names:
        match = _PAST.match(name)
        if not match:
            continue
        layer, part, which = match.groups()
        present = presents.get((layer, part, which))
        shape, dtype = inputs[name]
        cross = part == "encoder"
        if present is None and not cross:
            raise ModelFolderError(
                f"{file}: input {name} has no matching present.* output to continue the KV cache."
            )
        slots.append(CacheSlot(int(layer), name, present, cross, tuple(shape), dtype))
    slots.sort(key=lambda s: (s.layer, s.cross, s.past))

    present_to_past = {}
    for (layer, part, which), output in presents.items():
        middle = f"{part}." if part else ""
        present_to_past[output] = f"past_key_values.{layer}.{middle}{which}"
    cross_presents = tuple(o for key, o in presents.items() if key[1] == "encoder")

    def pick(*candidates: str) -> str | None:
        return next((c for c in candidates if c in inputs), None)

    return GraphSpec(
        inputs=names,
        outputs=tuple(outputs),
        slots=tuple(slots),
        takes_cache=bool(slots),
        attention_mask=pick("attention_mask", "decoder_attention_mask"),
        position_ids=pick("position_ids"),
        use_cache_branch=pick("use_cache_branch"),
        encoder_states=pick("encoder_hidden_states"),
        encoder_mask=pick("encoder_attention_mask"),
        self_presents=tuple(o for o in presents.values() if o not in cross_presents),
        cross_presents=cross_presents,
        present_to_past=present_to_past,
    )


def _find_graphs(path: Path) -> tuple[dict[str, Path], str]:
    """Role -> graph file for the most preferred precision present. Raises ModelFolderError."""
    onnx_dir = path / "onnx" if (path / "onnx").is_dir() else path
    present = {p.name for p in onnx_dir.glob("*.onnx")}
    for suffix in PRECISIONS:
        if f"encoder_model{suffix}.onnx" in present:
            encoder = onnx_dir / f"encoder_model{suffix}.onnx"
            if f"decoder_model_merged{suffix}.onnx" in present:
                merged = onnx_dir / f"decoder_model_merged{suffix}.onnx"
                return {"encoder": encoder, "decoder": merged}, suffix
            pair = (f"decoder_model{suffix}.onnx", f"decoder_with_past_model{suffix}.onnx")
            if all(name in present for name in pair):
                return {
                    "encoder": encoder,
                    "decoder_first": onnx_dir / pair[0],
                    "decoder": onnx_dir / pair[1],
                }, suffix
            raise ModelFolderError(
                f"{encoder} has no decoder beside it: expected decoder_model_merged{suffix}.onnx "
                f"or decoder_model{suffix}.onnx with decoder_with_past_model{suffix}.onnx."
            )
        if f"model{suffix}.onnx" in present:
            return {"decoder": onnx_dir / f"model{suffix}.onnx"}, suffix
    found = ", ".join(sorted(present)) or "no .onnx files"
    raise ModelFolderError(
        f"{onnx_dir} holds {found}; expected onnx/model.onnx (decoder-only) or "
        "onnx/encoder_model.onnx with onnx/decoder_model_merged.onnx (encoder-decoder)."
    )


def _graph_size(file: Path) -> int:
    extra = sum(p.stat().st_size for p in file.parent.glob(file.name + "_data*"))
    return file.stat().st_size + extra


def _context_size(config: dict, tokenizer_config: dict) -> int:
    for key in ("max_position_embeddings", "n_positions", "max_target_positions", "n_ctx"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    limit = tokenizer_config.get("model_max_length")
    if isinstance(limit, int) and 0 < limit < 10**7:
        return limit
    return 512  # T5-style relative positions have no hard limit; keep the trained length


def _first_int(value: object) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) else None


def _as_ids(value: object) -> set[int]:
    if isinstance(value, int):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, int)}
    return set()


def _end_tokens(
    config: dict, generation: dict, tokenizer: dict, tokenizer_config: dict
) -> frozenset[int]:
    """Union of end-of-turn ids (C1, C2). tokenizer: tokenizer.json's content (checked)."""
    ids = _as_ids(generation.get("eos_token_id")) | _as_ids(config.get("eos_token_id"))
    eos = tokenizer_config.get("eos_token")
    eos_text = eos.get("content") if isinstance(eos, dict) else eos
    if isinstance(eos_text, str):
        added = {t.get("content"): t.get("id") for t in tokenizer.get("added_tokens", [])}
        vocab = tokenizer["model"].get("vocab", {})
        token_id = added.get(eos_text)
        if token_id is None and isinstance(vocab, dict):
            token_id = vocab.get(eos_text)
        if isinstance(token_id, int):
            ids.add(token_id)
    return frozenset(ids)


def empty_cache_shape(slot: CacheSlot, config: dict) -> tuple[int, ...]:
    """The zero-length shape fed for `slot` before the first step (case D1): (1, heads, 0, dim).

    Static axes come from the graph; symbolic head counts and sizes from config.json.
    Raises ModelFolderError when neither gives them.
    """
    heads = _first_config_int(
        config, "num_key_value_heads", "num_attention_heads", "decoder_attention_heads",
        "num_heads", "n_head",
    )  # fmt: skip
    hidden = _first_config_int(config, "hidden_size", "d_model", "n_embd")
    head_dim = _first_config_int(config, "head_dim", "d_kv") or (
        hidden // heads if hidden and heads else None
    )
    shape: list[int] = []
    for axis, dim in enumerate(slot.shape):
        if isinstance(dim, int) and dim >= 0 and axis != 2:
            shape.append(dim)
        elif axis == 0 or axis == 2:
            shape.append(1 if axis == 0 else 0)
        elif axis == 1 and heads:
            shape.append(heads)
        elif axis == 3 and head_dim:
            shape.append(head_dim)
        else:
            raise ModelFolderError(
                f"config.json gives no size for axis {axis} ({dim}) of the KV-cache input "
                f"{slot.past}."
            )
    return tuple(shape)


def _first_config_int(config: dict, *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None
