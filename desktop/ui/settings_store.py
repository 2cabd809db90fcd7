"""The window's persisted settings: a small JSON file at `paths.settings_file()`.

Owns: reading and writing that file, and turning its `generation` entries back into
`GenerationSettings` (unknown keys are ignored, so an older or newer file still opens). Sampling
settings are kept per model, so each model starts from its own generation_config.json defaults
until the person changes them. No Qt here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop import paths
from desktop.engine.events import GenerationSettings

log = logging.getLogger(__name__)

PROVIDERS = ("auto", "cpu", "cuda", "dml", "coreml")


@dataclass
class AppSettings:
    """model: a model name from the catalog, or a model folder path; None = the default model.
    show_surprisal: the inspector's "Show surprisal" (tokens and chart by surprisal)."""

    model: str | None = None
    provider: str = "auto"
    system_prompt: str = ""
    generation: dict[str, dict[str, Any]] = field(default_factory=dict)
    show_surprisal: bool = False

    def generation_for(self, model_name: str, defaults: GenerationSettings) -> GenerationSettings:
        """The saved settings for a model laid over `defaults` (from its generation_config)."""
        saved = self.generation.get(model_name)
        if not saved:
            return defaults
        names = {f.name for f in dataclasses.fields(GenerationSettings)}
        values = {k: v for k, v in saved.items() if k in names}
        for key in ("stop_strings", "stop_ids"):
            if key in values:
                values[key] = tuple(values[key] or ())
        try:
            return dataclasses.replace(defaults, **values)
        except TypeError:
            return defaults

    def remember(self, model_name: str, settings: GenerationSettings) -> None:
        self.generation[model_name] = dataclasses.asdict(settings)


def load(path: Path | None = None) -> AppSettings:
    """Reads the settings file; a missing or unreadable file gives the defaults (logged)."""
    path = path or paths.settings_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AppSettings()
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable settings file %s: %s", path, err)
        return AppSettings()
    if not isinstance(data, dict):
        return AppSettings()
    provider = data.get("provider", "auto")
    return AppSettings(
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        provider=provider if provider in PROVIDERS else "auto",
        system_prompt=str(data.get("system_prompt", "")),
        generation={
            str(k): dict(v)
            for k, v in (data.get("generation") or {}).items()
            if isinstance(v, dict)
        },
        show_surprisal=data.get("show_surprisal") is True,
    )


def save(settings: AppSettings, path: Path | None = None) -> None:
    """Writes atomically (temp file, then rename)."""
    path = path or paths.settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(settings), indent=2), encoding="utf-8")
    tmp.replace(path)
