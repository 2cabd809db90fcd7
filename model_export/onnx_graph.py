"""Export a decoder-only PyTorch model to one ONNX graph with a KV cache, through optimum.

The graph takes `input_ids`, `attention_mask`, `position_ids` and `past_key_values.{i}.key|value`
and returns `logits` and `present.{i}.key|value`; a zero-length past serves the prefill, so one
graph does prefill and decode steps (optimum's `text-generation-with-past` task, merged=False).
This module writes graphs; it does not know about tokenizers or the self-check.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import onnx

from .errors import ExportError

TASK = "text-generation-with-past"


def export_decoder(model: Any, onnx_dir: Path) -> Path:
    """Export `model` to `onnx_dir/model.onnx` (plus `model.onnx_data` past 2 GB).

    Raises `ExportError` when optimum cannot export the model. Returns the path of model.onnx.
    """
    from optimum.exporters.onnx import onnx_export_from_model

    onnx_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="optimum-", dir=onnx_dir.parent) as scratch:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's TracerWarnings for every shape branch
            _quiet_loggers()
            try:
                onnx_export_from_model(model, scratch, task=TASK, do_validation=False)
            except (ValueError, KeyError, NotImplementedError) as err:
                raise ExportError(f"optimum cannot export this model: {err}") from err
        for produced in Path(scratch).iterdir():
            if produced.name.startswith("model.onnx"):
                shutil.move(str(produced), onnx_dir / produced.name)
    path = onnx_dir / "model.onnx"
    if not path.is_file():
        raise ExportError("optimum produced no model.onnx")
    return path


def _quiet_loggers() -> None:
    for name in ("optimum", "transformers", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def io_names(path: Path) -> tuple[list[str], list[str]]:
    """The graph's input and output names, read without loading the weights."""
    model = onnx.load(str(path), load_external_data=False)
    return [i.name for i in model.graph.input], [o.name for o in model.graph.output]
