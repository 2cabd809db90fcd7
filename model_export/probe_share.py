"""Let the probe graph read its weights from the chat graph's file instead of carrying a copy.

ONNX external data names a file, a byte offset and a length for each tensor; nothing requires
that file to be a separate `.onnx_data` file. A chat graph saved by torch.onnx (optimum's
`model.onnx`) holds every weight as contiguous raw little-endian bytes inside its protobuf, so a
probe tensor whose bytes equal one of those can point at them (location `model.onnx`, offset,
length) and the probe file keeps only its graph. The probe is exported without constant folding
(its Linear weights [out, in] behind Transpose nodes) while the chat graph stores them folded
([in, out]): a Transpose of an initializer whose transposed bytes are in the chat graph is
replaced by that transposed initializer first.

    probe:  W ─ Transpose ─ MatMul        chat file: ... [raw bytes of Wᵀ] ...
    after:  Wᵀ (external: model.onnx, offset, length) ─ MatMul

Tensors under 1 KiB stay inline. The probe then needs the chat file beside it: a folder that
deletes `model.onnx` must not share (the default model's probe is written self-contained).
"""

from __future__ import annotations

import hashlib
import mmap
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

MIN_SHARED_BYTES = 1024


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _chat_offsets(chat_path: Path) -> dict[bytes, tuple[str, int, int]]:
    """sha256 of each chat initializer's raw bytes -> (file name, offset, length).

    The initializers' raw_data lie in the file in graph order, so each is searched from the end
    of the previous one (one pass over the file). Tensors not stored as raw_data are skipped.
    """
    proto = onnx.load(str(chat_path), load_external_data=False)
    found: dict[bytes, tuple[str, int, int]] = {}
    with chat_path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        cursor = 0
        for tensor in proto.graph.initializer:
            raw = tensor.raw_data
            if len(raw) < MIN_SHARED_BYTES or tensor.data_location == onnx.TensorProto.EXTERNAL:
                continue
            at = data.find(raw, cursor)
            if at < 0:
                at = data.find(raw)
            if at >= 0:
                found.setdefault(_digest(raw), (chat_path.name, at, len(raw)))
                cursor = at + len(raw)
    return found


def _fold_transposes(graph: onnx.GraphProto, chat: dict[bytes, tuple[str, int, int]]) -> None:
    """Replace Transpose(W) (W a 2-D initializer) by the initializer Wᵀ when the chat graph
    holds Wᵀ's bytes; W is dropped when nothing else reads it."""
    inits = {t.name: t for t in graph.initializer}
    for node in list(graph.node):
        if node.op_type != "Transpose" or node.input[0] not in inits:
            continue
        weight = numpy_helper.to_array(inits[node.input[0]])
        if weight.ndim != 2:
            continue
        flipped = np.ascontiguousarray(weight.T)
        if _digest(flipped.tobytes()) not in chat:
            continue
        graph.initializer.append(numpy_helper.from_array(flipped, node.output[0]))
        graph.node.remove(node)
    used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    for tensor in list(graph.initializer):
        if tensor.name not in used:
            graph.initializer.remove(tensor)


def share_weights(probe_path: Path, chat_paths: list[Path]) -> int:
    """Point `probe_path`'s initializers at equal bytes in `chat_paths` (graphs in the same
    folder, e.g. model.onnx, or encoder_model.onnx and decoder_model_merged.onnx), rewrite the
    probe file; returns the bytes now read from the chat files instead of stored twice."""
    chat: dict[bytes, tuple[str, int, int]] = {}
    for chat_path in chat_paths:
        chat = {**_chat_offsets(chat_path), **chat}
    proto = onnx.load(str(probe_path))
    _fold_transposes(proto.graph, chat)
    shared = 0
    for tensor in proto.graph.initializer:
        raw = numpy_helper.to_array(tensor).tobytes()
        hit = chat.get(_digest(raw)) if len(raw) >= MIN_SHARED_BYTES else None
        if hit is None:
            continue
        location, offset, length = hit
        name, dims, dtype = tensor.name, list(tensor.dims), tensor.data_type
        tensor.Clear()
        tensor.name, tensor.data_type = name, dtype
        tensor.dims.extend(dims)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", offset), ("length", length)):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(value)
        shared += length
    onnx.save_model(proto, str(probe_path))
    return shared
