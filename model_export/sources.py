"""Turn a SOURCE argument into a loaded PyTorch model and its tokenizer.

A SOURCE is a local Hugging Face folder (config.json + weights), a `.gguf` file (loaded through
transformers' GGUF support, which dequantizes every tensor to float32), or a hub id (downloaded
through huggingface_hub where the network allows). This module knows nothing about ONNX.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .architectures import check_supported
from .errors import ExportError

GGUF_MAGIC = b"GGUF"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class LoadedSource:
    """A model ready to export. `gguf_path` is set when the weights came from a GGUF file."""

    model: Any  # transformers.PreTrainedModel, float32, eval mode
    tokenizer: Any  # transformers.PreTrainedTokenizerFast
    name: str
    gguf_path: Path | None = None


def resolve(source: str | Path) -> LoadedSource:
    """Load SOURCE. Raises `ExportError` (one line) for a missing path, a folder without
    config.json, a corrupt GGUF, an unsupported architecture, or a hub id that cannot be fetched."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ExportError(
                f"{path} is a file but not a .gguf; give a GGUF file or a model folder"
            )
        return _load_gguf(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ExportError(f"{path} has no config.json: not a Hugging Face model folder")
        return _load_hf(str(path), name=path.name, local_files_only=True)
    if str(source).lower().endswith(".gguf") or not _HUB_ID.match(str(source)):
        raise ExportError(f"no such file or folder: {source}")
    return _load_hf(str(source), name=str(source).split("/")[-1], local_files_only=False)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportError(f"cannot read {path}: {err}") from err


def _load_hf(ref: str, *, name: str, local_files_only: bool) -> LoadedSource:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if local_files_only:
        raw = _read_json(Path(ref) / "config.json")
        check_supported(str(raw.get("model_type")), bool(raw.get("is_encoder_decoder")))
    try:
        config = AutoConfig.from_pretrained(ref, local_files_only=local_files_only)
    except (OSError, ValueError) as err:
        raise ExportError(f"cannot load the config of {ref}: {_first_line(err)}") from err
    check_supported(config.model_type, bool(config.is_encoder_decoder))
    if config.is_encoder_decoder:
        from transformers import AutoModelForSeq2SeqLM as auto_model
    else:
        auto_model = AutoModelForCausalLM
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, local_files_only=local_files_only)
        model = auto_model.from_pretrained(
            ref, local_files_only=local_files_only, dtype=torch.float32
        )
    except (OSError, ValueError) as err:
        raise ExportError(f"cannot load {ref}: {_first_line(err)}") from err
    return LoadedSource(model=model.eval(), tokenizer=tokenizer, name=name)


def _check_gguf_header(path: Path) -> dict[str, Any]:
    """Read the GGUF header and metadata; raise `ExportError` if the file is not a valid GGUF."""
    from gguf import GGUFReader

    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ExportError(f"{path} is not a GGUF file (bad magic {magic!r})")
    try:
        reader = GGUFReader(str(path))
        meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.")}
        n_tensors = len(reader.tensors)
    except (ValueError, IndexError, KeyError, OSError, TypeError) as err:
        raise ExportError(f"{path} is a corrupt GGUF file: {_first_line(err)}") from err
    if n_tensors == 0 or "general.architecture" not in meta:
        raise ExportError(f"{path} is a corrupt GGUF file: no tensors or no architecture")
    return meta


def _load_gguf(path: Path) -> LoadedSource:
    import torch
    from transformers import AutoModelForCausalLM

    from .gguf_tokenizer import tokenizer_from_gguf

    meta = _check_gguf_header(path)
    arch = str(meta["general.architecture"])
    check_supported(arch, False)
    tokenizer = tokenizer_from_gguf(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        )
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise ExportError(f"cannot load the GGUF {path}: {_first_line(err)}") from err
    name = str(meta.get("general.name") or path.stem).replace(" ", "-")
    return LoadedSource(model=model.eval(), tokenizer=tokenizer, name=name, gguf_path=path)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
