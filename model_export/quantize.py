"""Weight-quantized variants of an exported graph, with onnxruntime's own tools.

int8: dynamic quantization of MatMul weights (onnxruntime.quantization.quantize_dynamic),
written as onnx/model_int8.onnx. int4: blockwise 4-bit MatMulNBits (block 32, symmetric),
written as onnx/model_q4.onnx. Names follow transformers.js. Quality is checked by the caller.
"""

from __future__ import annotations

from pathlib import Path

import onnx

VARIANT_FILES = {"int8": "model_int8.onnx", "int4": "model_q4.onnx"}


def quantize(model_path: Path, kind: str) -> Path:
    """Write the `kind` ("int8" or "int4") variant of `model_path` beside it; returns its path."""
    out = model_path.with_name(VARIANT_FILES[kind])
    if kind == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(model_path), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
        )
    elif kind == "int4":
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        model = onnx.load(str(model_path))
        quantizer = MatMulNBitsQuantizer(model, block_size=32, is_symmetric=True)
        quantizer.process()
        onnx.save_model(quantizer.model.model, str(out))
    else:
        raise ValueError(f"unknown quantization {kind!r}")
    return out
