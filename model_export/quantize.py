"""Weight-quantized variants of an exported graph, with onnxruntime's own tools.

int8: dynamic quantization of MatMul weights (onnxruntime.quantization.quantize_dynamic),
written as onnx/model_int8.onnx. int4: blockwise 4-bit MatMulNBits (block 32, symmetric),
written as onnx/model_q4.onnx; for a GGUF source, int4 instead carries the GGUF's own Q4_1
blocks, by default into onnxruntime-genai's fused float32 graph (see fused_graph and gguf_carry).
Names follow transformers.js. Quality is checked by the caller.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

VARIANT_FILES = {"int8": "model_int8.onnx", "int4": "model_q4.onnx"}


GRAPHS = ("fused", "optimum")


def quantize(
    model_path: Path,
    kind: str,
    gguf_path: Path | None = None,
    *,
    model: Any = None,
    graph: str = "fused",
) -> tuple[Path, dict]:
    """Write the `kind` ("int8" or "int4") variant of `model_path` beside it.

    For a model exported from a GGUF, int4 carries the GGUF's own Q4_1 blocks (exact, see
    gguf_carry), and with graph="fused" and the PyTorch `model` given, into the fused graph of
    onnxruntime-genai's builder (fused_graph) rather than into `model_path`'s optimum graph;
    when no fused graph can be built it falls back to the optimum graph and records why.
    Otherwise int4 is onnxruntime's symmetric blockwise MatMulNBits quantizer.
    Returns the variant's path and a description of the method for the report.
    """
    out = model_path.with_name(VARIANT_FILES[kind])
    if kind == "int4" and gguf_path is not None:
        from .gguf_carry import DEFAULT_LEVELS, carry_gguf_weights

        source, form, note = _carry_source(model_path, model, graph)
        hooks: dict[str, Callable[[onnx.ModelProto], dict]] = {}
        if source != model_path:  # the fused graph: packed gate/up; a tied embedding stored twice
            from .fused_graph import finish_fused, prepare_fused

            hooks = {"prepare": prepare_fused, "finish": finish_fused}
        try:
            counts = carry_gguf_weights(source, gguf_path, out, levels=DEFAULT_LEVELS, **hooks)
        finally:
            if source != model_path:
                shutil.rmtree(source.parent.parent, ignore_errors=True)
        if counts["Q4_1"]:
            method = {"method": "gguf-carry", "graph": form, "levels": DEFAULT_LEVELS}
            for key in (
                "packed_matmuls",
                "embedding_tied_to_lm_head",
                "past_present_share_buffer",
                "quantized_gathers",
            ):
                if key in counts:
                    method[key] = counts.pop(key)
            if note:
                method["fused_unavailable"] = note
            return out, {**method, "matmuls": counts}
        out.unlink()  # no Q4_1 blocks to carry: quantize the float weights instead
        out.with_name(out.name + ".data").unlink(missing_ok=True)
    if kind == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        method = {"method": "onnxruntime quantize_dynamic", "weight_type": "QInt8"}
        quantize_dynamic(
            str(model_path), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
        )
    elif kind == "int4":
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        # it logs every node at INFO
        logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(
            logging.WARNING
        )
        model = onnx.load(str(model_path))
        method = {"method": "onnxruntime MatMulNBitsQuantizer", "block_size": 32, "symmetric": True}
        quantizer = MatMulNBitsQuantizer(model, block_size=32, is_symmetric=True)
        quantizer.process()
        onnx.save_model(quantizer.model.model, str(out))
    else:
        raise ValueError(f"unknown quantization {kind!r}")
    return out, method


OPTIMUM_FORM = "optimum (unfused attention and RMSNorm)"


def _carry_source(model_path: Path, model: Any, graph: str) -> tuple[Path, str, str | None]:
    """The float32 graph to carry the GGUF blocks into: (path, graph form, why not fused)."""
    if graph not in GRAPHS:
        raise ValueError(f"unknown graph {graph!r}")
    if graph == "optimum" or model is None:
        return model_path, OPTIMUM_FORM, None
    from .errors import ExportError
    from .fused_graph import GRAPH_FORM, build_fused_fp32

    scratch = Path(tempfile.mkdtemp(prefix=".fused-", dir=model_path.parent.parent))
    try:
        return build_fused_fp32(model, scratch / "fused"), GRAPH_FORM, None
    except ExportError as err:
        shutil.rmtree(scratch, ignore_errors=True)
        return model_path, OPTIMUM_FORM, str(err)
