"""Where Tokenglass keeps things: the user's data folder, and the bundled assets.

User data (models, chats, settings) lives in the platformdirs user data folder, or in
`$TOKENGLASS_HOME` when set (tests set it to a temp dir). Never inside the app bundle.
Assets are found next to the source tree, or under `sys._MEIPASS` in a PyInstaller bundle.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "Tokenglass"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
# The second bundled model: a small T5 trained by model_export.dates_model.
DATES_MODEL_NAME = "t5-dates-iso8601"


def home() -> Path:
    """The user data folder (created on first use)."""
    override = os.environ.get("TOKENGLASS_HOME")
    path = (
        Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Installed model folders, one per model, named after the model."""
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_model_dir() -> Path:
    return models_dir() / DEFAULT_MODEL_NAME


def dates_model_dir() -> Path:
    return models_dir() / DATES_MODEL_NAME


def history_db() -> Path:
    """The SQLite file of saved conversations."""
    return home() / "history.sqlite3"


def settings_file() -> Path:
    return home() / "settings.json"


def cache_dir() -> Path:
    """Optimized-model caches and downloads; safe to delete."""
    path = home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def assets_dir() -> Path:
    """The `assets/` folder: beside the source tree, or inside a frozen bundle."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "assets"
    return Path(__file__).resolve().parent.parent / "assets"


def bundled_models_dir() -> Path | None:
    """Models shipped inside a frozen bundle (read-only), or None when running from source."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root and (Path(frozen_root) / "models").is_dir():
        return Path(frozen_root) / "models"
    return None


def source_checkout() -> bool:
    """Whether Tokenglass runs from its source tree (a developer's checkout: the Makefile and the
    model exporter beside the package), where `make model` builds the default model; False in
    the packaged app and in an installed package."""
    if getattr(sys, "frozen", False) or getattr(sys, "_MEIPASS", None):
        return False
    root = Path(__file__).resolve().parent.parent
    return (root / "Makefile").is_file() and (root / "model_export").is_dir()
