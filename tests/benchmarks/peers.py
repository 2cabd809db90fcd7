"""The benchmark's peer models, built from the same GGUF when missing (tests/benchmarks/decode.py).

onnxruntime-genai's peer is its own model builder's int4 CPU model of the GGUF's weights: the
GGUF loaded (and dequantized) by transformers, saved as a Hugging Face folder, then
`python -m onnxruntime_genai.models.builder -i HF -o OUT -p int4 -e cpu`. It is built once into
the user cache folder (`<cache>/bench/genai-int4`), written under a temporary name and renamed
at the end, so an interrupted build is rebuilt next time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class PeerBuildError(RuntimeError):
    """A peer model could not be built; the message says why in one line."""


def build_genai_peer(gguf: Path, out: Path) -> float:
    """Build onnxruntime-genai's int4 model of `gguf` at `out` (a folder with genai_config.json);
    returns the seconds it took. Raises PeerBuildError when transformers cannot load the GGUF or
    the builder fails."""
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="genai-build-", dir=out.parent) as tmp:
        hf = Path(tmp) / "hf"
        try:
            from model_export.sources import resolve

            loaded = resolve(gguf)
            loaded.model.save_pretrained(hf)
            loaded.tokenizer.save_pretrained(hf)
        except Exception as err:  # ExportError, or transformers' own for a GGUF it cannot read
            raise PeerBuildError(f"cannot load {gguf.name} with transformers: {err}") from err
        del loaded
        built = Path(tmp) / "genai"
        command = [
            sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf),
            "-o", str(built), "-p", "int4", "-e", "cpu", "-c", str(Path(tmp) / "cache"),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not (built / "genai_config.json").is_file():
            last = (done.stderr.strip().splitlines() or ["no genai_config.json written"])[-1]
            raise PeerBuildError(f"onnxruntime-genai's builder failed: {last[:300]}")
        if out.exists():
            shutil.rmtree(out)
        built.rename(out)
    return time.perf_counter() - started
