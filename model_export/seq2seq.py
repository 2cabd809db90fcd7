"""Encoder-decoder export (T5 incl. flan-t5's untied head, BART, Marian), transformers.js layout.

Writes into `out_dir` (the caller makes it a temp dir and renames it when this returns):

    onnx/encoder_model.onnx           input_ids, attention_mask -> last_hidden_state
    onnx/decoder_model_merged.onnx    input_ids, encoder_attention_mask, encoder_hidden_states,
                                      past_key_values.{i}.decoder|encoder.key|value,
                                      use_cache_branch
                                      -> logits, present.{i}.decoder|encoder.key|value
    config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
    special_tokens_map.json, export_report.json

optimum-onnx (task text2text-generation-with-past) traces the graphs and merges the no-cache and
cached decoders into one graph with an If node on `use_cache_branch`. The self-check lives in
seq2seq_check.py. This module does not know the CLI or the decoder-only path (model_export/api.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from transformers import GenerationConfig

from model_export.errors import ExportError
from model_export.seq2seq_check import self_check
from model_export.seq2seq_tokenizer import fast_tokenizer

#: Encoder-decoder model types with a tiny test model in tests/fixtures/seq2seq_models.py.
SUPPORTED_MODEL_TYPES = ("t5", "bart", "marian")
TASK = "text2text-generation-with-past"
ONNX_FILES = ("encoder_model.onnx", "decoder_model_merged.onnx")


class Seq2SeqExportError(ExportError):
    """The export or its self-check failed; the message says which part and by how much."""


def export_seq2seq(
    model, tokenizer, out_dir: Path, *, quantize: str = "none", check: bool = True
) -> dict:
    """Export an encoder-decoder `model` with its fast `tokenizer` into `out_dir`.

    quantize: "none", "int8" (dynamic int8 weights, files `*_int8.onnx`) or "q4" (4-bit MatMul
    weights, files `*_q4.onnx`); quantized files sit beside the fp32 ones and must pass the top-1
    agreement gate (case D4). check: run the self-check (ONNX vs PyTorch logits, greedy ids).
    Returns the report dict, also written to out_dir/export_report.json.
    A slow MarianTokenizer is converted (seq2seq_tokenizer.py); other slow tokenizers raise.
    Raises Seq2SeqExportError (an ExportError) when a check fails.
    """
    out_dir = Path(out_dir)
    quantize = {"int4": "q4"}.get(quantize, quantize)  # the decoder-only CLI's name for q4
    if not getattr(model.config, "is_encoder_decoder", False):
        raise Seq2SeqExportError(f"{type(model).__name__} is not an encoder-decoder model")
    model = model.eval().float()
    tokenizer = fast_tokenizer(tokenizer)
    _export_onnx(model, out_dir / "onnx")
    write_metadata(model, tokenizer, out_dir)
    report = {
        "kind": "encoder-decoder",
        "model_type": model.config.model_type,
        "architecture": type(model).__name__,
        "files": [f"onnx/{name}" for name in ONNX_FILES],
        "quantize": quantize,
    }
    if check or quantize != "none":
        report["check"] = self_check(model, tokenizer, out_dir, quantize=quantize)
        for suffix in report["check"].get("variants", {}).values():
            report["files"] += [f"onnx/{n.removesuffix('.onnx')}{suffix}.onnx" for n in ONNX_FILES]
    (out_dir / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    failures = report.get("check", {}).get("failures", [])
    if failures:
        raise Seq2SeqExportError("export self-check failed: " + "; ".join(failures))
    return report


def _export_onnx(model, onnx_dir: Path) -> None:
    """Trace encoder and merged decoder with optimum-onnx into `onnx_dir` (other graphs dropped)."""

    onnx_dir.mkdir(parents=True, exist_ok=True)
    # optimum's export leaves use_cache=True on the sub-configs (T5's encoder then refuses to run)
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    saved = {key: getattr(config, "use_cache", None) for key, config in configs.items()}
    try:
        _run_optimum(model, onnx_dir)
    finally:
        for key, config in configs.items():
            config.use_cache = saved[key]


def _run_optimum(model, onnx_dir: Path) -> None:
    from optimum.exporters.onnx import onnx_export_from_model

    with tempfile.TemporaryDirectory(prefix="seq2seq-export-") as scratch:
        with warnings.catch_warnings():
            # the tracer flags every shape-dependent `if`; optimum's merged graph covers both
            # branches and the self-check proves the result, so these say nothing to the user
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            onnx_export_from_model(model, scratch, task=TASK, do_validation=False)
        produced = {p.name for p in Path(scratch).iterdir()}
        missing = [name for name in ONNX_FILES if name not in produced]
        if missing:
            raise Seq2SeqExportError(f"optimum-onnx did not write {', '.join(missing)}")
        for path in Path(scratch).iterdir():
            # the two graphs, and their external weight files when a model is over 2 GB
            if path.name in ONNX_FILES or path.name.split(".onnx")[0] in {
                n.removesuffix(".onnx") for n in ONNX_FILES
            }:
                shutil.move(str(path), onnx_dir / path.name)


def generation_defaults(model) -> GenerationConfig:
    """The generation settings the app needs: decoder start, EOS (a list), pad, forced BOS.

    Taken from the model's generation_config, falling back to its config (T5 and Marian keep
    decoder_start_token_id == pad_token_id; BART forces BOS after the decoder start).
    """
    config, base = model.config, model.generation_config
    gen = GenerationConfig.from_dict(base.to_dict()) if base is not None else GenerationConfig()
    for name in ("decoder_start_token_id", "eos_token_id", "pad_token_id", "bos_token_id"):
        if getattr(gen, name, None) is None and getattr(config, name, None) is not None:
            setattr(gen, name, getattr(config, name))
    for name in ("forced_bos_token_id", "forced_eos_token_id"):
        if getattr(gen, name, None) is None and getattr(config, name, None) is not None:
            setattr(gen, name, getattr(config, name))
    if gen.decoder_start_token_id is None:
        raise Seq2SeqExportError("the model has no decoder_start_token_id in its configs")
    return gen


def write_metadata(model, tokenizer, out_dir: Path) -> None:
    """Write config.json, generation_config.json and the tokenizer files into `out_dir`.

    Raises Seq2SeqExportError for a slow-only tokenizer (no tokenizer.json can be written).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise Seq2SeqExportError(
            f"{type(tokenizer).__name__} is a slow tokenizer with no tokenizer.json; the app "
            "needs a fast tokenizer (for Marian, convert its SentencePiece model first)"
        )
    model.config.save_pretrained(out_dir)
    generation_defaults(model).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if not (out_dir / name).is_file():
            raise Seq2SeqExportError(f"the tokenizer did not write {name}")
