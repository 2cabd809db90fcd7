"""The encoder-decoder probe (T5, BART, Marian) through the engine and `tokenglass inspect
--target`, against transformers' eager attention; the trained tiny T5's cross-attention."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from desktop.__main__ import main
from desktop.engine.chat import load_model
from tests.fixtures.common import hf_source_dir

KINDS = ["tiny_t5_dir", "tiny_bart_dir", "tiny_marian_dir"]


def with_probe(folder: Path, out: Path) -> Path:
    """A copy of the exported `folder` with the probe graph added from its Hugging Face source
    (the seq2seq fixtures are built without one), reading its weights from the chat graphs."""
    from transformers import AutoModelForSeq2SeqLM

    from model_export.probe import export_seq2seq_probe

    shutil.copytree(folder, out)
    model = AutoModelForSeq2SeqLM.from_pretrained(hf_source_dir(folder)).eval()
    chat = [out / "onnx" / "decoder_model_merged.onnx", out / "onnx" / "encoder_model.onnx"]
    report = export_seq2seq_probe(model, out / "onnx", share_with=chat)
    probe_bytes = (out / "onnx" / "probe_model.onnx").stat().st_size
    assert report["shared_bytes"] > probe_bytes  # most weights are read from the chat graphs
    return out


@pytest.fixture(scope="module")
def probed(request, tmp_path_factory):
    """kind -> (the fixture's folder, a copy with a probe graph)."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(kind: str) -> tuple[Path, Path]:
        if kind not in made:
            folder = request.getfixturevalue(kind)
            copy = with_probe(folder, tmp_path_factory.mktemp(kind) / folder.name)
            made[kind] = (folder, copy)
        return made[kind]

    return get


def _torch(folder: Path, src: list[int], tgt: list[int]) -> dict:
    """transformers' eager attentions and the lens over decoder positions, in PyTorch."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from model_export.probe import _seq2seq_lens_head

    model = AutoModelForSeq2SeqLM.from_pretrained(
        hf_source_dir(folder), attn_implementation="eager"
    ).eval()
    head = _seq2seq_lens_head(model)
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([src]),
            decoder_input_ids=torch.tensor([tgt]),
            output_attentions=True,
            output_hidden_states=True,
        )
        lens = [torch.log_softmax(head(h), -1) for h in out.decoder_hidden_states[1:-1]]
        lens.append(torch.log_softmax(out.logits, -1))
    stack = lambda maps: torch.stack(maps)[:, 0].numpy()  # noqa: E731
    return {
        "encoder": stack(out.encoder_attentions),
        "decoder": stack(out.decoder_attentions),
        "cross": stack(out.cross_attentions),
        "lens": torch.stack(lens)[:, 0].numpy(),  # (L, tgt, vocab)
    }


@pytest.mark.parametrize("kind", KINDS)
def test_attention_and_lens_equal_pytorch(kind, probed):
    source, folder = probed(kind)
    model = load_model(folder, provider="cpu", threads=1)
    src = model.tokenizer.encode_prompt("hello world, how are you", rendered_by_template=False)
    start = model.manifest.decoder_start_id
    tgt = [start, *model.tokenizer.encode("a b c")]
    got = model.inspect_seq2seq(src, tgt, top_k=5)
    ref = _torch(source, src, tgt)
    for name in ("encoder", "decoder", "cross"):
        ours = getattr(got, f"{name}_attention")
        assert ours.shape == ref[name].shape
        np.testing.assert_allclose(ours, ref[name], atol=1e-4)
        np.testing.assert_allclose(ours.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(got.lens_ids[..., 0], ref["lens"].argmax(-1))
    picked = np.take_along_axis(ref["lens"], got.lens_ids, axis=-1)
    np.testing.assert_allclose(got.lens_logprobs, picked, atol=1e-4)


def test_cli_target_json(probed, capsys):
    folder = probed("tiny_bart_dir")[1]
    assert main(["inspect", "--model", str(folder), "--target", "a b", "--json", "hello"]) == 0
    out = json.loads(capsys.readouterr().out)
    src, tgt = len(out["tokens"]), len(out["target_tokens"])
    layers = len(out["decoder_attention"])
    assert np.array(out["encoder_attention"]).shape[2:] == (src, src)
    assert np.array(out["decoder_attention"]).shape[2:] == (tgt, tgt)
    assert np.array(out["cross_attention"]).shape[2:] == (tgt, src)
    assert len(out["logit_lens"]) == layers and len(out["logit_lens"][0]) == tgt
    model = load_model(folder, provider="cpu", threads=1)
    assert out["target_tokens"][0]["id"] == model.manifest.decoder_start_id


def test_trained_t5_cross_attention_peaks_on_the_mirrored_character(
    trained_t5_dir, trained_t5_examples, tmp_path
):
    """The tiny T5 reverses words: output character j is input character n-1-j. At the decoder
    position that predicts it, the cross-attention (mean over heads) peaks on that character
    for most positions in at least one layer."""
    folder = with_probe(trained_t5_dir, tmp_path / "trained")
    model = load_model(folder, provider="cpu", threads=1)
    start = model.manifest.decoder_start_id
    hits = np.zeros(2)
    total = 0
    for word, answer in trained_t5_examples[:50]:
        src = model.tokenizer.encode_prompt(word, rendered_by_template=False)
        tgt = [start, *model.tokenizer.encode(answer)]
        chars = [model.tokenizer.token_label(i) for i in src]
        assert chars[: len(word)] == list(word)  # one token per character, then </s>
        got = model.inspect_seq2seq(src, tgt[: len(word)])
        peaks = got.cross_attention.mean(axis=1).argmax(-1)  # (layers, rows)
        for j in range(len(word)):
            mirrored = word[len(word) - 1 - j]
            hits += [chars[p] == mirrored for p in peaks[:, j]]
            total += 1
    share = hits / total
    print(f"mirrored-character peaks per layer: {share.round(3).tolist()} of {total} positions")
    assert share.max() > 0.5
