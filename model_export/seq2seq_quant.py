"""Weight quantization of an exported encoder-decoder folder with onnxruntime's own quantizers.

"int8": `quantize_dynamic` (int8 weights, activations quantized at run time), subgraphs included so
the merged decoder's If branches are quantized too. "q4": `MatMulNBitsQuantizer` (4-bit blocks of
32 weights, symmetric) on every MatMul. The fp32 graphs stay; the new ones get a suffix
(`encoder_model_int8.onnx`, `decoder_model_merged_q4.onnx`), as transformers.js names them.
Quality is gated by seq2seq_check, not here.
"""

from __future__ import annotations

from pathlib import Path

import onnx

GRAPHS = ("encoder_model", "decoder_model_merged")


def quantize_folder(folder: Path, kind: str, suffix: str) -> list[Path]:
    """Quantize both graphs in folder/onnx; returns the new files. Raises ValueError for `kind`."""
    written = []
    for name in GRAPHS:
        source = Path(folder) / "onnx" / f"{name}.onnx"
        target = source.with_name(f"{name}{suffix}.onnx")
        if kind == "int8":
            _int8(source, target)
        elif kind == "q4":
            _q4(source, target)
        else:
            raise ValueError(f"unknown quantization {kind!r}; use 'none', 'int8' or 'q4'")
        written.append(target)
    return written


def _int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        target,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"EnableSubgraph": True},
    )


def _q4(source: Path, target: Path) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(source)), bits=4, block_size=32, is_symmetric=True
    )
    quantizer.process()
    onnx.save(quantizer.model.model, str(target))
