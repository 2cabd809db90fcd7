"""Installed models: the folders in the user's models folder (and those bundled with the app).

Owns: listing them (`list_models`) and turning a name or a folder into a model folder
(`resolve_model`), with an error that says how to build the default model when it is missing.
Reads folders through manifest.py; opens no sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from desktop import paths
from desktop.engine.errors import ModelFolderError
from desktop.engine.manifest import read_manifest

BUILD_HINT = "build it with `make model` (python -m model_export default)"
"""What a developer does in a source checkout (paths.source_checkout) when the model is missing."""


def build_hint() -> str:
    """What to do when the default model is missing: in a source checkout, build it
    (BUILD_HINT); in the packaged app, add a model folder or open one from the window."""
    if paths.source_checkout():
        return BUILD_HINT
    return (
        f"put a model folder in {paths.models_dir()}, or open one with Settings → Open folder… "
        "(on the command line: --model FOLDER)"
    )


@dataclass(frozen=True)
class ModelInfo:
    """An installed model. family: config.json model_type; precision: fp32|fp16|int8|int4...;
    size_bytes: the ONNX graphs' size; kind: "decoder" | "encoder-decoder"; title: the name to
    show people (tokenglass.json's title, else the folder name)."""

    name: str
    path: Path
    family: str
    precision: str
    size_bytes: int
    kind: str
    title: str = ""


def _roots() -> list[Path]:
    roots = [paths.models_dir()]
    bundled = paths.bundled_models_dir()
    if bundled is not None:
        roots.append(bundled)
    return roots


def list_models() -> list[ModelInfo]:
    """Every readable model folder, user models first, then bundled ones (a name once).
    Folders that are not model folders are left out."""
    found: dict[str, ModelInfo] = {}
    for root in _roots():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name in found:
                continue
            try:
                m = read_manifest(folder)
            except ModelFolderError:
                continue
            found[folder.name] = ModelInfo(
                m.name, m.path, m.family, m.precision, m.size_bytes, m.kind, m.title
            )
    return list(found.values())


def resolve_model(name_or_dir: str | None) -> Path:
    """The model folder for a name (installed or bundled), a path, or None (the default model).

    Raises ModelFolderError when nothing matches; for the default model it says how to build it.
    """
    if name_or_dir is None:
        for root in _roots():
            candidate = root / paths.DEFAULT_MODEL_NAME
            if (candidate / "config.json").is_file():
                return candidate
        raise ModelFolderError(
            f"The default model {paths.DEFAULT_MODEL_NAME} is not installed in "
            f"{paths.models_dir()}; {build_hint()}."
        )
    direct = Path(name_or_dir).expanduser()
    if direct.is_dir():
        return direct
    for root in _roots():
        if (root / name_or_dir).is_dir():
            return root / name_or_dir
    names = ", ".join(m.name for m in list_models()) or "none"
    raise ModelFolderError(
        f"No model named {name_or_dir!r}: it is neither a folder nor an installed model "
        f"(installed: {names})."
    )
