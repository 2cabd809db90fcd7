"""Command line: `python -m model_export SOURCE --out DIR [--quantize ...] [--force] [--no-check]
[--no-probe]`, `python -m model_export SOURCE --out DIR --add-probe` (the probe graph into a
folder already exported from SOURCE), `python -m model_export default [--no-probe]` (both bundled
models into the user's models folder: the default model with its probe graph, made from its 4-bit
graph, and the dates T5) and `python -m model_export dates` (the dates T5 only).

Also the console script `tokenglass-export`. An `ExportError` becomes one line on stderr and
exit status 2; the output folder is then absent (the export writes atomically).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ExportError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenglass-export",
        description="Export a trained transformer (HF folder, hub id or .gguf) to an ONNX model "
        "folder with a KV cache. `default` builds both bundled models (SmolLM2-135M-Instruct "
        "and the dates T5, trained here); `dates` only the dates T5.",
    )
    parser.add_argument(
        "source", help="a Hugging Face folder, a hub id, a .gguf file, 'default' or 'dates'"
    )
    parser.add_argument("--out", type=Path, help="the model folder to write")
    parser.add_argument("--quantize", choices=("none", "int8", "int4"), default="none")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the ONNX vs PyTorch self-check"
    )
    parser.add_argument(
        "--no-probe", action="store_true", help="skip the probe graph (attention, logit lens)"
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="with 'default': kept for old scripts; the default model's probe graph (made from its "
        "4-bit graph, about 0.3 MB) is now written unless --no-probe",
    )
    parser.add_argument(
        "--add-probe",
        action="store_true",
        help="only add the probe graph to the existing folder --out exported from SOURCE",
    )
    return parser


def build_bundled(which: str, force: bool = False, probe: bool = True) -> list[Path]:
    """`default`: both bundled models (SmolLM2-135M-Instruct, then the dates T5); `dates`: the
    dates T5 only. Each is built only when missing or made by an older recipe. probe: also the
    default model's probe graph (from model_q4.onnx; added to a current folder that lacks it)."""
    from .dates_model import build_dates_model

    built = []
    if which == "default":
        from .default_model import build_default_model

        built.append(build_default_model(force=force, probe=probe))
    built.append(build_dates_model(force=force))
    return built


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.source in ("default", "dates") and args.out is None:
            for path in build_bundled(args.source, force=args.force, probe=not args.no_probe):
                print(path)
            return 0
        if args.out is None:
            raise ExportError("--out DIR is required")
        from .api import add_probe, export

        if args.add_probe:
            print(json.dumps(add_probe(args.source, args.out)))
            return 0
        report = export(
            args.source,
            args.out,
            quantize=args.quantize,
            force=args.force,
            check=not args.no_check,
            probe=not args.no_probe,
        )
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    print(json.dumps(summary(report)))
    print(args.out)
    return 0


def summary(report: dict) -> dict:
    """The one-line summary the CLI prints, for every export kind's report.

    A decoder-only check (check.py) states `logits_max_abs_diff` and `greedy_equal`; an
    encoder-decoder check (seq2seq_check.py) gives per-step `logits.max_abs_diff` and
    `greedy.equal`. Both become `logits_max_abs_diff` (float, largest over the steps) and
    `greedy_equal` (bool); without a check (`--no-check`) neither key is present. `kind`:
    "decoder" or "encoder-decoder".
    """
    out = {k: report.get(k) for k in ("name", "wall_s", "peak_rss_mb", "folder_bytes")}
    out["kind"] = report.get("kind", "decoder")  # only the encoder-decoder report names its kind
    check = report.get("check")
    if not isinstance(check, dict):
        return out
    if "logits_max_abs_diff" in check:  # decoder-only
        out["logits_max_abs_diff"] = check["logits_max_abs_diff"]
        out["greedy_equal"] = check.get("greedy_equal")
    else:  # encoder-decoder: per-step differences and the greedy comparison
        diffs = check.get("logits", {}).get("max_abs_diff", [])
        out["logits_max_abs_diff"] = max(diffs) if diffs else None
        out["greedy_equal"] = check.get("greedy", {}).get("equal")
    return out


if __name__ == "__main__":
    sys.exit(main())
