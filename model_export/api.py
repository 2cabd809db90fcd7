"""`export()`: one SOURCE in, one checked model folder out, written atomically.

The folder (the layout transformers.js and onnx-community use):
    config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
    special_tokens_map.json, onnx/model.onnx [, onnx/model_int8.onnx | onnx/model_q4.onnx],
    onnx/probe_model.onnx (unless probe=False; see probe.py),
    export_report.json
Everything is written into a hidden temporary folder beside OUT and renamed at the end, so a
failed or interrupted export leaves no half folder; an existing OUT is replaced only with force.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from . import bench
from . import check as selfcheck
from .errors import ExportError
from .fused_graph import GRAPH_FORM as FUSED_FORM
from .gguf_tokenizer import check_gguf_tokenizer
from .onnx_graph import export_decoder, io_names
from .probe import PROBE_FILE, export_probe, export_seq2seq_probe
from .quantize import VARIANT_FILES
from .quantize import quantize as quantize_graph
from .seq2seq import export_seq2seq
from .sources import LoadedSource, resolve
from .tokenizer_files import write_generation_files, write_json, write_tokenizer_files

QUANTIZE_CHOICES = ("none", "int8", "int4")


def export(
    source: str | Path,
    out_dir: Path,
    *,
    quantize: str = "none",
    force: bool = False,
    check: bool = True,
    probe: bool = True,
) -> dict:
    """Export SOURCE (HF folder, hub id or .gguf) to the model folder `out_dir`.

    probe: also write the probe graph (attention and logit lens, float32).

    Returns the export report (also written as export_report.json). Raises `ExportError` with a
    one-line reason for a bad source, an existing `out_dir` without `force`, or a failed check
    (logits off by more than 1e-3, greedy tokens differing, quantized top-1 agreement < 90%).
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ExportError(
            f"unknown --quantize {quantize!r}: choose one of {', '.join(QUANTIZE_CHOICES)}"
        )
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not force:
        raise ExportError(f"{out_dir} already exists; pass --force to replace it")
    started = time.perf_counter()
    loaded = resolve(source)
    load_s = time.perf_counter() - started
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        if loaded.model.config.is_encoder_decoder:
            report = dict(
                export_seq2seq(loaded.model, loaded.tokenizer, tmp, quantize=quantize, check=check)
            )
        else:
            report = _export_decoder(loaded, tmp, quantize=quantize, check=check)
            if probe:  # last: torch.onnx's tracing can leave the PyTorch model changed
                chat = [tmp / "onnx" / "model.onnx"]
                report["probe"] = export_probe(loaded.model, tmp / "onnx", share_with=chat)
        if probe and loaded.model.config.is_encoder_decoder:
            chat = [tmp / "onnx" / "decoder_model_merged.onnx", tmp / "onnx" / "encoder_model.onnx"]
            chat = [p for p in chat if p.is_file()]
            report["probe"] = export_seq2seq_probe(loaded.model, tmp / "onnx", share_with=chat)
        report.update(_common_report(source, loaded, tmp, started, load_s))
        write_json(tmp / "export_report.json", report)
        replace_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


CHAT_GRAPHS = ("model.onnx", "decoder_model_merged.onnx", "encoder_model.onnx")


def add_probe(source: str | Path, out_dir: Path, *, share: bool = True) -> dict:
    """Write the probe graph of SOURCE into the existing model folder `out_dir` (exported from
    that SOURCE), atomically (a temporary folder beside onnx/, then a rename); records it in
    export_report.json's `probe`. Returns that section. share: read the weights from the
    folder's float32 chat graphs (CHAT_GRAPHS) where they are; False writes a self-contained probe
    (for a folder whose float32 graph may be removed later, as the default model's).

    Raises ExportError when `out_dir` is not a model folder, or as export_probe.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    onnx_dir = out_dir / "onnx"
    if not any(onnx_dir.glob("*model*.onnx")):
        raise ExportError(f"{out_dir} is not a model folder (no onnx/*model*.onnx)")
    loaded = resolve(source)
    write = export_seq2seq_probe if loaded.model.config.is_encoder_decoder else export_probe
    tmp = onnx_dir / f".probe-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        chat = [tmp / name for name in CHAT_GRAPHS if (onnx_dir / name).is_file()] if share else []
        for name in chat:  # the probe points at files beside it: link them into the scratch folder
            (tmp / name.name).hardlink_to(onnx_dir / name.name)
        section = write(loaded.model, tmp, share_with=chat)
        for name in chat:
            (tmp / name.name).unlink()
        for made in tmp.iterdir():
            made.replace(onnx_dir / made.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report_path = out_dir / "export_report.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = {}
    write_json(report_path, {**report, "probe": section})
    return section


def _export_decoder(loaded: LoadedSource, tmp: Path, *, quantize: str, check: bool) -> dict:
    model, tokenizer = loaded.model, loaded.tokenizer
    t0 = time.perf_counter()
    onnx_path = export_decoder(model, tmp / "onnx")
    inputs, outputs = io_names(onnx_path)
    report: dict = {
        "onnx_export_s": round(time.perf_counter() - t0, 2),
        "inputs": inputs,
        "outputs": outputs,
    }
    write_generation_files(model, tokenizer, tmp)
    max_length = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None
    )
    write_tokenizer_files(tokenizer, tmp, max_length=max_length)
    if loaded.gguf_path is not None:
        report["tokenizer_check"] = check_gguf_tokenizer(tmp, loaded.gguf_path)
    if check:
        t0 = time.perf_counter()
        report["check"] = selfcheck.check_against_torch(model, tokenizer, onnx_path)
        report["check"]["seconds"] = round(time.perf_counter() - t0, 2)
        _require(report["check"])
    if quantize != "none":
        report["quantized"] = _quantize_checked(loaded, onnx_path, quantize, check=check)
    if check:
        ids = bench.chat_ids(tokenizer, bench.PROMPTS[0])
        report["decode_tokens_per_s"] = {
            path.name: bench.decode_tokens_per_s(path, ids)
            for path in sorted(onnx_path.parent.glob("*.onnx"))
        }
    return report


def _quantize_checked(loaded: LoadedSource, onnx_path: Path, kind: str, *, check: bool) -> dict:
    """Write and check the `kind` variant. A GGUF's blocks go into the fused graph first; if that
    variant fails the check (top-1 under 90%, or greedy tokens differing from the float32
    graph's), they go into the optimum graph instead and the report says why."""
    variant, method = quantize_graph(onnx_path, kind, loaded.gguf_path, model=loaded.model)
    result = {"kind": kind, "file": f"onnx/{variant.name}", **method}
    if not check:
        return result
    fused = method.get("graph") == FUSED_FORM
    try:
        checked = _check_variant(loaded.tokenizer, onnx_path, variant, kind)
        failure = None if checked["greedy_equal"] else "greedy tokens differ from float32's"
    except Exception as err:  # an ExportError (top-1 gate) or a runtime error in the graph
        if not fused:
            raise
        checked, failure = {}, f"{type(err).__name__}: {str(err)[:300]}"
    if failure is None or not fused:
        return {**result, **checked}
    variant, method = quantize_graph(onnx_path, kind, loaded.gguf_path, graph="optimum")
    result = {"kind": kind, "file": f"onnx/{variant.name}", **method, "fused_rejected": failure}
    return {**result, **_check_variant(loaded.tokenizer, onnx_path, variant, kind)}


def _check_variant(tokenizer: Any, reference: Path, variant: Path, kind: str) -> dict:
    """Top-1 agreement (must be >= 90%, cases D4), greedy agreement on the bench prompts, and
    the reference record (bench.reference_record) that checks use once the float32 graph is
    gone."""
    agreement = selfcheck.top1_agreement(tokenizer, reference, variant)
    if agreement < selfcheck.MIN_AGREEMENT:
        raise ExportError(
            f"{kind} quantization degrades the model: top-1 agreement with the "
            f"unquantized model is {agreement:.1%} over {selfcheck.AGREEMENT_POSITIONS} "
            f"positions (at least {selfcheck.MIN_AGREEMENT:.0%} needed)"
        )
    reference_ids = bench.greedy_ids(tokenizer, reference)
    variant_ids = bench.greedy_ids(tokenizer, variant)
    first_differences = [
        bench.first_difference(a, b) for a, b in zip(reference_ids, variant_ids, strict=True)
    ]
    return {
        "top1_agreement": agreement,
        "positions": selfcheck.AGREEMENT_POSITIONS,
        "greedy_prompts": len(first_differences),
        "greedy_first_difference_per_prompt": first_differences,
        "greedy_equal": all(d is None for d in first_differences),
        "reference": bench.reference_record(tokenizer, reference, reference_ids),
    }


def _require(result: dict) -> None:
    if result["logits_max_abs_diff"] > result["logits_atol"]:
        raise ExportError(
            "self-check failed: ONNX logits differ from PyTorch by "
            f"{result['logits_max_abs_diff']:.2e} (more than {result['logits_atol']:.0e})"
        )
    if not result["greedy_equal"]:
        raise ExportError(
            "self-check failed: ONNX greedy tokens differ from PyTorch's from token "
            f"{result['greedy_first_difference']}"
        )


def _common_report(
    source: str | Path, loaded: LoadedSource, tmp: Path, started: float, load_s: float
) -> dict:
    sizes = {
        str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()
    }
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peak_mb = peak_kb / (1024 * 1024) if sys.platform == "darwin" else peak_kb / 1024
    return {
        "source": str(source),
        "name": loaded.name,
        "model_type": loaded.model.config.model_type,
        "from_gguf": loaded.gguf_path is not None,
        "load_s": round(load_s, 2),
        "wall_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "file_sizes": sizes,
        "folder_bytes": sum(sizes.values()),
    }


def replace_folder(tmp: Path, out_dir: Path) -> None:
    """Rename `tmp` to `out_dir`, moving an existing `out_dir` aside first and deleting it after.
    `tmp` may be on another file system (it is then copied beside `out_dir` first)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if tmp.parent.resolve() != out_dir.parent.resolve():
        moved = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
        shutil.move(str(tmp), str(moved))
        tmp = moved
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "PROBE_FILE",
    "QUANTIZE_CHOICES",
    "VARIANT_FILES",
    "add_probe",
    "export",
    "replace_folder",
]
