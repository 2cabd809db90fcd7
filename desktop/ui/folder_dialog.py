"""The "Open folder…" dialog of the Settings panel: choose a model folder, starting in the user's
models folder (where `tokenglass` looks for models, paths.models_dir), not in whatever folder
the app was started from.

A view helper: builds the dialog; the panel opens it and reads the chosen folder.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QWidget

from desktop import paths


def model_folder_dialog(parent: QWidget | None = None) -> QFileDialog:
    """A folder-only dialog titled "Open a model folder", in the models folder."""
    dialog = QFileDialog(parent, "Open a model folder", str(paths.models_dir()))
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    return dialog
