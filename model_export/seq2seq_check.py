"""Self-check of an encoder-decoder export against its PyTorch model, and quantized variants.

Checks, all recorded in the report dict that export_report.json carries:
- encoder: ONNX last_hidden_state vs PyTorch, max |diff|;
- logits at the first decoder step (empty cache, case D1) and 3 later cached steps vs a PyTorch
  forward on the same decoder prefix, max |diff| <= 1e-3 + 1e-4 * max |logit|;
- 32 greedy tokens from the ONNX cached loop equal to PyTorch's `generate` (greedy, 1 beam);
- for a quantized variant, top-1 agreement with fp32 ONNX on up to 200 teacher-forced decoder
  positions of a fixed text, >= 90% (case D4, onnxruntime#19450).
It does not write files except the quantized graphs (onnx/*_int8.onnx, onnx/*_q4.onnx).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import GenerationConfig

from model_export.seq2seq_runtime import OnnxSeq2Seq

CHECK_SOURCE = "translate English to German: The house is wonderful and the garden is green."
GATE_TEXT = (
    "Once upon a time there was a little house by the sea. Every morning the fisherman walked "
    "down to the water, looked at the sky and counted the boats. The children of the village "
    "ran after the gulls, and the old baker sold bread that smelled of salt and smoke. "
)
LATER_STEPS = 3
GREEDY_TOKENS = 32
GATE_POSITIONS = 200
GATE_MIN_AGREEMENT = 0.90
ATOL, RTOL = 1e-3, 1e-4
SUFFIXES = {"int8": "_int8", "q4": "_q4"}


def self_check(model, tokenizer, out_dir: Path, *, quantize: str = "none") -> dict:
    """Run every check on the folder `out_dir`; returns a dict with a `failures` list."""
    report: dict = {"source_text": CHECK_SOURCE, "failures": []}
    gen = GenerationConfig.from_pretrained(out_dir)
    runner = OnnxSeq2Seq(out_dir, model.config)
    src = np.asarray(tokenizer(CHECK_SOURCE)["input_ids"], np.int64)[None, :]  # (1, S)
    report["logits"] = _check_logits(model, runner, src, gen.decoder_start_token_id, report)
    report["greedy"] = _check_greedy(model, runner, src, gen, report)
    if quantize != "none":
        report["variants"] = {quantize: SUFFIXES[quantize]}
        report["quantized"] = {quantize: _quantize_and_gate(model, tokenizer, out_dir, quantize)}
        agreement = report["quantized"][quantize]["top1_agreement"]
        if agreement < GATE_MIN_AGREEMENT:
            report["failures"].append(
                f"{quantize} weights change the top-1 token at {1 - agreement:.0%} of "
                f"{report['quantized'][quantize]['positions']} positions (at most "
                f"{1 - GATE_MIN_AGREEMENT:.0%} allowed); export without quantization"
            )
    return report


def gen_start(gen: GenerationConfig) -> int:
    return int(gen.decoder_start_token_id)


def _check_logits(model, runner: OnnxSeq2Seq, src, start: int, report: dict) -> dict:
    mask = np.ones_like(src)
    vocab = model.config.vocab_size
    prefix = [start] + [(7 + 13 * i) % vocab for i in range(LATER_STEPS)]
    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(src),
            attention_mask=torch.from_numpy(mask),
            decoder_input_ids=torch.tensor([prefix]),
            use_cache=False,
        )
    ref = out.logits.numpy()  # (1, T, vocab)
    enc_ref = out.encoder_last_hidden_state.numpy()  # (1, S, d_model)
    hidden = runner.encode(src, mask)
    diffs, past = [], None
    for t, token in enumerate(prefix):
        logits, past = runner.step(np.array([[token]], np.int64), hidden, mask, past)
        diffs.append(float(np.abs(logits[0, -1] - ref[0, t]).max()))
        if diffs[-1] > ATOL + RTOL * float(np.abs(ref[0, t]).max()):
            which = "first (empty cache)" if t == 0 else f"cached step {t}"
            report["failures"].append(
                f"ONNX logits differ from PyTorch at the {which} decoder step by {diffs[-1]:.2e}"
            )
    encoder_diff = float(np.abs(hidden - enc_ref).max())
    return {"decoder_prefix": prefix, "max_abs_diff": diffs, "encoder_max_abs_diff": encoder_diff}


def _check_greedy(model, runner: OnnxSeq2Seq, src, gen: GenerationConfig, report: dict) -> dict:
    eos = gen.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    plain = GenerationConfig(
        decoder_start_token_id=gen.decoder_start_token_id,
        eos_token_id=gen.eos_token_id,
        pad_token_id=gen.pad_token_id,
        forced_bos_token_id=gen.forced_bos_token_id,
        do_sample=False,
        num_beams=1,
        max_new_tokens=GREEDY_TOKENS,
    )
    # generate() fills "unset" fields of a passed config from model.generation_config (beams,
    # no_repeat_ngram_size, forced EOS of bart-large-cnn...); swapping the config in avoids that
    saved, model.generation_config = model.generation_config, plain
    try:
        with torch.no_grad():
            out = model.generate(
                input_ids=torch.from_numpy(src),
                attention_mask=torch.ones_like(torch.from_numpy(src)),
            )
    finally:
        model.generation_config = saved
    reference = out[0, 1:].tolist()  # drop the decoder start
    onnx_ids = runner.greedy(
        src, gen.decoder_start_token_id, eos_ids, GREEDY_TOKENS, gen.forced_bos_token_id
    )
    if onnx_ids != reference:
        report["failures"].append(
            f"ONNX greedy ids {onnx_ids} differ from PyTorch generate {reference}"
        )
    return {"pytorch": reference, "onnx": onnx_ids, "equal": onnx_ids == reference}


def gate_ids(tokenizer, gen: GenerationConfig, max_positions: int) -> list[int]:
    """Decoder ids for the quantization gate: decoder start + GATE_TEXT, `max_positions` long."""
    ids = tokenizer(GATE_TEXT, add_special_tokens=False)["input_ids"]
    while len(ids) < max_positions:
        ids = ids + ids
    return [gen_start(gen), *ids[: max_positions - 1]]


def _quantize_and_gate(model, tokenizer, out_dir: Path, quantize: str) -> dict:
    from model_export.seq2seq_quant import quantize_folder

    suffix = SUFFIXES[quantize]
    quantize_folder(out_dir, quantize, suffix)
    gen = GenerationConfig.from_pretrained(out_dir)
    limit = getattr(model.config, "max_position_embeddings", None) or GATE_POSITIONS + 2
    ids = np.array([gate_ids(tokenizer, gen, min(GATE_POSITIONS, limit - 2))], np.int64)  # (1, T)
    src = np.asarray(tokenizer(CHECK_SOURCE)["input_ids"], np.int64)[None, :]  # (1, S)
    mask = np.ones_like(src)
    top1 = []
    for variant in ("", suffix):
        runner = OnnxSeq2Seq(out_dir, model.config, suffix=variant)
        logits, _ = runner.step(ids, runner.encode(src, mask), mask, None)  # (1, T, vocab)
        top1.append(np.argmax(logits[0], axis=-1))  # (T,)
    agreement = float(np.mean(top1[0] == top1[1]))
    return {"top1_agreement": agreement, "positions": int(ids.shape[1]), "suffix": suffix}
