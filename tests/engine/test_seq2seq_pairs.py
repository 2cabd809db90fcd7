"""I16: optimum's older encoder-decoder layout, `decoder_model.onnx` (the first step, reading
`encoder_hidden_states`) with `decoder_with_past_model.onnx` (later steps, reading the
cross-attention keys and values from the cache, no `encoder_hidden_states` input), as many
published seq2seq folders ship it. The pair is a real one: optimum exports the tiny T5 and BART
of the fixtures without merging (`no_post_process=True`); the engine's replies on it equal those
on the merged graph, and PyTorch's greedy ids."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

from desktop.engine.chat import load_model
from desktop.engine.events import GenerationSettings, Message, TokenStep
from desktop.engine.manifest import read_manifest
from tests.fixtures.common import hf_source_dir

PAIR = ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=12, top_logprobs=5)


def unmerged_copy(merged: Path) -> Path:
    """`merged` (a cached tiny export) with its onnx/ replaced by optimum's unmerged graphs;
    cached beside it (its name carries the fixture's source hash)."""
    final = merged.with_name(merged.name + "-unmerged")
    if all((final / "onnx" / name).is_file() for name in PAIR):
        return final
    import torch
    from optimum.exporters.onnx import onnx_export_from_model
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(str(hf_source_dir(merged))).eval()
    work = merged.with_name(f".work-unmerged-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copytree(merged, work, ignore=shutil.ignore_patterns("onnx"))
        (work / "onnx").mkdir()
        with tempfile.TemporaryDirectory(prefix="unmerged-") as scratch:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                onnx_export_from_model(
                    model,
                    scratch,
                    task="text2text-generation-with-past",
                    no_post_process=True,  # keep decoder_model + decoder_with_past_model
                    do_validation=False,
                )
            for name in PAIR:
                shutil.move(str(Path(scratch) / name), work / "onnx" / name)
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


@pytest.fixture(scope="module", params=["tiny_t5_dir", "tiny_bart_dir"])
def pair(request) -> tuple[Path, Path]:
    merged = request.getfixturevalue(request.param)
    return merged, unmerged_copy(merged)


def test_i16_the_pair_is_optimums_unmerged_layout(pair):
    _, folder = pair
    manifest = read_manifest(folder)
    assert manifest.graphs["decoder_first"].name == "decoder_model.onnx"
    assert manifest.graphs["decoder"].name == "decoder_with_past_model.onnx"
    model = load_model(folder, provider="cpu", threads=1)
    assert model._stepper.first_spec.encoder_states == "encoder_hidden_states"
    assert model._stepper.spec.encoder_states is None  # it reads the cross-attention cache
    assert any(slot.cross for slot in model._stepper.spec.slots)


def test_i16_the_pair_answers_as_the_merged_graph_and_pytorch(pair):
    merged_dir, folder = pair
    merged = load_model(merged_dir, provider="cpu", threads=1)
    unmerged = load_model(folder, provider="cpu", threads=1)
    chat = [Message("user", "The quick brown fox jumps over the lazy dog")]
    a = [e for e in merged.generate(chat, GREEDY)]
    b = [e for e in unmerged.generate(chat, GREEDY)]
    assert [getattr(e, "id", None) for e in a] == [getattr(e, "id", None) for e in b]
    assert a[-1].text == b[-1].text and b[-1].completion_tokens == 12
    tokens = [(x, y) for x, y in zip(a, b, strict=True) if isinstance(x, TokenStep)]
    assert len(tokens) == 12
    for x, y in tokens:
        assert x.logprob == pytest.approx(y.logprob, abs=1e-4)

    check = json.loads((merged_dir / "export_report.json").read_text())["check"]
    ids = unmerged.tokenizer.encode_prompt(check["source_text"], rendered_by_template=False)
    stepper = unmerged._stepper
    forced = 1 if unmerged.manifest.forced_bos_id is not None else 0
    expected = check["greedy"]["pytorch"][forced:]
    logits = stepper.prefill(ids)
    got: list[int] = []
    for _ in expected:
        got.append(int(np.argmax(logits)))
        logits = stepper.step(got[-1])
    assert got == expected
