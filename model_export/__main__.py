"""Command line: `python -m model_export SOURCE --out DIR [--quantize ...] [--force] [--no-check]
[--no-probe]`, `python -m model_export SOURCE --out DIR --add-probe` (the probe graph into a
folder already exported from SOURCE) and `python -m model_export default [--probe]` (the default
model into the user's models folder; with --probe also its probe graph, added to a built folder).

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
        "folder with a KV cache. `default` builds the default model (SmolLM2-135M-Instruct).",
    )
    parser.add_argument(
        "source", help="a Hugging Face folder, a hub id, a .gguf file, or 'default'"
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
        help="with 'default': also write the probe graph (float32, adds about 540 MB)",
    )
    parser.add_argument(
        "--add-probe",
        action="store_true",
        help="only add the probe graph to the existing folder --out exported from SOURCE",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.source == "default" and args.out is None:
            from .default_model import build_default_model

            path = build_default_model(force=args.force, probe=args.probe)
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
    summary = {k: report.get(k) for k in ("name", "wall_s", "peak_rss_mb", "folder_bytes")}
    if "check" in report:
        summary["logits_max_abs_diff"] = report["check"]["logits_max_abs_diff"]
        summary["greedy_equal"] = report["check"]["greedy_equal"]
    print(json.dumps(summary))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
