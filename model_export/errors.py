"""The exporter's one error type: its message is a single line fit to show the user as it is.

The CLI (`python -m model_export`) prints it and exits non-zero; nothing else is caught by type
or substring. Anything that is not an `ExportError` is a bug and keeps its traceback.
"""


class ExportError(Exception):
    """An export that cannot go on: a missing or broken source, an unsupported architecture,
    an existing output folder without --force, or a failed self-check. `str(err)` is one line."""
