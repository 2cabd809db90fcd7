"""The probe graph through the engine (desktop/engine/inspect.py) and `tokenglass inspect`,
against transformers' eager attention and the chat graph's own logits, on the tiny models."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from desktop.__main__ import main
from desktop.engine import inspect as inspect_module
from desktop.engine.chat import load_model
from desktop.engine.errors import InspectTooLargeError, NoProbeGraphError
from desktop.engine.events import GenerationSettings, Message, TokenStep
from model_export.check import OnnxDecoder, make_session
from tests.fixtures.common import hf_source_dir

KINDS = ["tiny_llama_dir", "tiny_gpt2_dir", "tiny_qwen2_dir"]
TEXT = "The quick brown fox jumps over the lazy dog. What is the capital of France?"


def _torch_reference(folder, ids: list[int]) -> dict[str, np.ndarray]:
    """transformers' eager attention (L, heads, seq, seq) and the logit lens computed in
    PyTorch: log_softmax(lm_head(final_norm(h_l))) for l < L, the model's logits at L."""
    import torch
    from transformers import AutoModelForCausalLM

    from model_export.probe import FINAL_NORMS, _module

    model = AutoModelForCausalLM.from_pretrained(
        hf_source_dir(folder), attn_implementation="eager"
    ).eval()
    norm = _module(model, FINAL_NORMS[model.config.model_type])
    head = model.get_output_embeddings()
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([ids]), output_attentions=True, output_hidden_states=True
        )
        streams = out.hidden_states[1:]  # L x (1, seq, hidden)
        lens = [torch.log_softmax(head(norm(h)), -1) for h in streams[:-1]]
        lens.append(torch.log_softmax(out.logits, -1))
    return {
        "attention": torch.stack(out.attentions)[:, 0].numpy(),  # (L, heads, seq, seq)
        "lens": torch.stack(lens)[:, 0].numpy(),  # (L, seq, vocab)
        "heads": model.config.num_attention_heads,
        "kv_heads": getattr(model.config, "num_key_value_heads", model.config.num_attention_heads),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_attention_and_lens_equal_pytorch(kind, request):
    folder = request.getfixturevalue(kind)
    model = load_model(folder, provider="cpu", threads=1)
    ids = model.tokenizer.encode(TEXT)
    got = model.inspect(ids, top_k=5)
    ref = _torch_reference(folder, ids)
    layers, heads, seq = ref["attention"].shape[:3]
    assert got.attention.shape == (layers, heads, seq, seq) and heads == ref["heads"]
    np.testing.assert_allclose(got.attention, ref["attention"], atol=1e-4)
    np.testing.assert_allclose(got.attention.sum(-1), 1.0, atol=1e-5)
    assert np.triu(got.attention[0, 0], 1).max() == 0.0  # causal: no key after the query
    assert got.lens_ids.shape == got.lens_logprobs.shape == (layers, seq, 5)
    want_ids = np.argsort(-ref["lens"], axis=-1, kind="stable")[..., :5]  # (L, seq, 5)
    np.testing.assert_array_equal(got.lens_ids[..., 0], want_ids[..., 0])
    picked = np.take_along_axis(ref["lens"], got.lens_ids, axis=-1)  # PyTorch at our ids
    np.testing.assert_allclose(got.lens_logprobs, picked, atol=1e-4)
    assert (np.diff(got.lens_logprobs, axis=-1) <= 0).all()  # best first
    if kind == "tiny_llama_dir":
        assert ref["kv_heads"] < heads  # grouped-query attention: one map per query head


@pytest.mark.parametrize("kind", KINDS)
def test_last_layer_lens_is_the_chat_graphs_next_token_distribution(kind, request):
    folder = request.getfixturevalue(kind)
    model = load_model(folder, provider="cpu", threads=1)
    ids = model.tokenizer.encode(TEXT)
    got = model.inspect(ids, top_k=10)
    chat = OnnxDecoder(make_session(folder / "onnx" / "model.onnx")).forward(ids)  # (seq, vocab)
    shifted = chat - chat.max(-1, keepdims=True)
    logprobs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    np.testing.assert_array_equal(got.lens_ids[-1, :, 0], chat.argmax(-1))
    want = np.take_along_axis(logprobs, got.lens_ids[-1], axis=-1)  # (seq, 10)
    np.testing.assert_allclose(got.lens_logprobs[-1], want, atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_probe_reads_its_weights_from_the_chat_graph(kind, request):
    import onnx

    folder = request.getfixturevalue(kind)
    probe = onnx.load(str(folder / "onnx" / "probe_model.onnx"), load_external_data=False)
    external = [t for t in probe.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and {
        e.value for t in external for e in t.external_data if e.key == "location"
    } == {"model.onnx"}
    report = json.loads((folder / "export_report.json").read_text())["probe"]
    assert report["shared_with"] == ["model.onnx"]
    assert report["shared_bytes"] > (folder / "onnx" / "probe_model.onnx").stat().st_size


def test_positions_select_rows(tiny_llama_dir):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    ids = model.tokenizer.encode(TEXT)
    full = model.inspect(ids)
    some = model.inspect(ids, positions=[len(ids) - 1, 3])
    assert some.positions == (len(ids) - 1, 3)
    np.testing.assert_allclose(some.attention, full.attention[:, :, [len(ids) - 1, 3]], atol=1e-6)
    np.testing.assert_array_equal(some.lens_ids, full.lens_ids[:, [len(ids) - 1, 3]])
    with pytest.raises(ValueError):
        some.attention[0, 0, 0, 0] = 1.0  # read-only: it crosses threads


def test_limits_raise_clear_errors(tiny_llama_dir, monkeypatch):
    model = load_model(tiny_llama_dir, provider="cpu", threads=1)
    with pytest.raises(InspectTooLargeError, match="at most 2048"):
        model.inspect([5] * (inspect_module.MAX_TOKENS + 1))
    with pytest.raises(InspectTooLargeError, match="context window"):
        model.inspect([5] * (model.context_size + 1))
    monkeypatch.setattr(inspect_module, "MAX_ATTENTION_BYTES", 2 * 4 * 10 * 40 * 4)
    with pytest.raises(InspectTooLargeError, match="at most 10 positions"):
        model.inspect([5] * 40)
    assert model.inspect([5] * 40, positions=range(30, 40)).attention.shape == (2, 4, 10, 40)


def test_folder_without_probe_chats_and_says_how_to_make_one(tiny_llama_dir, tmp_path, capsys):
    folder = tmp_path / "no-probe"
    shutil.copytree(tiny_llama_dir, folder, ignore=shutil.ignore_patterns("probe_model.onnx*"))
    model = load_model(folder, provider="cpu", threads=1)
    assert not model.inspector.available
    settings = GenerationSettings(max_new_tokens=3, temperature=0.0)
    steps = [
        s for s in model.generate([Message("user", "Hi")], settings) if isinstance(s, TokenStep)
    ]
    assert len(steps) == 3
    with pytest.raises(NoProbeGraphError, match="tokenglass-export"):
        model.inspect([5, 6])
    assert main(["inspect", "--model", str(folder), "Hi"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no probe graph" in err and "--add-probe" in err


def test_cli_json(tiny_qwen2_dir, capsys):
    assert main(["inspect", "--model", str(tiny_qwen2_dir), "--json", "--top-k", "3", "Hi"]) == 0
    out = json.loads(capsys.readouterr().out)
    model = load_model(tiny_qwen2_dir, provider="cpu", threads=1)
    ids = list(model.render_prompt([Message("user", "Hi")], 1).prompt_ids)
    assert [t["id"] for t in out["tokens"]] == ids
    seq = len(ids)
    attention = np.array(out["attention"])  # (layer, head, query, key)
    assert attention.shape == (2, 4, seq, seq)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    lens = out["logit_lens"]
    assert len(lens) == 2 and len(lens[-1]) == seq and len(lens[-1][0]) == 3
    assert set(lens[-1][0][0]) == {"id", "token", "logprob"}
    chat = OnnxDecoder(make_session(tiny_qwen2_dir / "onnx" / "model.onnx")).forward(ids)
    assert [row[0]["id"] for row in lens[-1]] == chat.argmax(-1).tolist()


def test_cli_raw_summary(tiny_gpt2_dir, capsys):
    assert main(["inspect", "--model", str(tiny_gpt2_dir), "--raw", "Hello world"]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = load_model(tiny_gpt2_dir, provider="cpu", threads=1)
    ids = model.tokenizer.encode_prompt("Hello world", rendered_by_template=False)
    assert lines[0].startswith(f"{len(ids)} tokens, 2 layers x 4 heads")
    assert len(lines) == 1 + len(ids) and "attends" in lines[1] and "| lens" in lines[1]


@pytest.mark.slow
def test_default_models_probe_agrees_with_its_chat_graph(default_model_dir):
    """The default model's probe (made from model_q4.onnx, reading its weights file; probe_q4.py)
    at every position of two greedy replies: the last layer's lens has the top-1 of the graph the
    app chats with, and its top-10 log-probabilities are within 1e-3 of that graph's own (the
    reply's recorded alternatives: log_softmax of model_q4.onnx's logits, step by step through
    the KV cache). `make model` writes the probe (and adds it to a folder built before it)."""
    probe = default_model_dir / "onnx" / "probe_model.onnx"
    assert probe.is_file(), "no probe graph: `make model` (python -m model_export default) adds it"
    assert probe.stat().st_size < 2**20  # a graph reading model_q4.onnx.data, no weights of its own
    model = load_model(default_model_dir, provider="cpu", threads=2)
    settings = GenerationSettings(
        max_new_tokens=32, temperature=0.0, repetition_penalty=1.0, top_logprobs=10
    )
    worst = 0.0
    for question in ("What is the capital of France?", "Write a haiku about tea."):
        events = list(model.generate([Message("user", question)], settings))
        prompt = list(events[0].prompt_ids)
        steps = [e for e in events if isinstance(e, TokenStep)]
        ids = [*prompt, *(s.id for s in steps)]
        rows = [len(prompt) - 1 + s.index for s in steps]  # the position that predicted each
        got = model.inspect(ids, positions=rows, top_k=10)
        assert got.lens_ids[-1, :, 0].tolist() == [s.top[0].id for s in steps]
        for row, step in enumerate(steps):
            want = {a.id: a.logprob for a in step.top}  # (10,) the app's own
            lens_ids, lens_lp = got.lens_ids[-1, row].tolist(), got.lens_logprobs[-1, row]
            assert sorted(lens_ids) == sorted(want)  # the same top 10
            diff = np.abs(lens_lp - [want[i] for i in lens_ids]).max()
            worst = max(worst, float(diff))
        np.testing.assert_allclose(got.attention.sum(-1), 1.0, atol=1e-4)
    assert worst < 1e-3, worst


def test_cli_saved_reply(tiny_llama_dir, capsys):
    from desktop.history import History

    argv = ["chat", "--model", str(tiny_llama_dir), "--temperature", "0"]
    assert main([*argv, "--max-new-tokens", "4", "Hi"]) == 0
    capsys.readouterr()
    with History() as history:
        conv = history.list_conversations()[0]
        reply = history.messages(conv.id)[-1]
    assert reply.role == "assistant" and reply.prompt is not None
    cmd = ["inspect", str(conv.id), "--message", str(reply.id), "--model", str(tiny_llama_dir)]
    assert main([*cmd, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = [*reply.prompt.prompt_ids, *(s.id for s in reply.steps)]
    assert [t["id"] for t in out["tokens"]] == want
    rows = len(reply.prompt.prompt_ids) - 1 + np.arange(len(reply.steps))
    greedy = [out["logit_lens"][-1][r][0]["id"] for r in rows]  # the reply was greedy
    assert greedy == [s.id for s in reply.steps]
    # an id that is not there is a usage error (exit 2), as in `branch` and `export`
    assert main(["inspect", str(conv.id), "--message", "999", "--model", str(tiny_llama_dir)]) == 2
    assert "has no reply with id 999" in capsys.readouterr().err
    assert (
        main(["inspect", "4242", "--message", str(reply.id), "--model", str(tiny_llama_dir)]) == 2
    )
    assert "no saved conversation with id 4242" in capsys.readouterr().err


@pytest.mark.parametrize("share", [True, False])
def test_add_probe_to_an_exported_folder(tiny_llama_dir, tmp_path, share):
    import onnx

    from model_export.api import add_probe

    folder = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, folder, ignore=shutil.ignore_patterns("probe_model.onnx*"))
    section = add_probe(hf_source_dir(tiny_llama_dir), folder, share=share)
    assert (section["shared_bytes"] > 0) is share
    assert not [p for p in (folder / "onnx").iterdir() if p.name.startswith(".")]  # no scratch
    probe = onnx.load(str(folder / "onnx" / "probe_model.onnx"), load_external_data=False)
    external = [t for t in probe.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert bool(external) is share
    report = json.loads((folder / "export_report.json").read_text())
    assert report["probe"] == section and "check" in report  # the export's own report is kept
    model = load_model(folder, provider="cpu", threads=1)
    ids = model.tokenizer.encode(TEXT)
    expected = load_model(tiny_llama_dir, provider="cpu", threads=1).inspect(ids)
    np.testing.assert_allclose(model.inspect(ids).attention, expected.attention, atol=1e-6)


def test_cli_saved_reply_that_is_not_the_active_version(tiny_llama_dir, capsys):
    # A regenerated (or branched) reply leaves the first one as an inactive version; it is still
    # a saved reply of the conversation, and `inspect` reads it as the model read it.
    from desktop.history import History

    argv = ["chat", "--model", str(tiny_llama_dir), "--temperature", "0"]
    assert main([*argv, "--max-new-tokens", "4", "Hi"]) == 0
    capsys.readouterr()
    with History() as history:
        conv = history.list_conversations()[0]
        first = history.messages(conv.id)[-1]
    branch = ["branch", str(conv.id), "--message", str(first.id), "--at", "1", "--token", "5"]
    assert main([*branch, "--model", str(tiny_llama_dir)]) == 0
    with History() as history:
        assert history.messages(conv.id)[-1].id != first.id  # the branch is the active version
    capsys.readouterr()
    cmd = ["inspect", str(conv.id), "--message", str(first.id), "--model", str(tiny_llama_dir)]
    assert main([*cmd, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in out["tokens"]] == [
        *first.prompt.prompt_ids,
        *(s.id for s in first.steps),
    ]


def test_a_model_trained_here_without_probe_names_its_training_folder(tiny_llama_dir, tmp_path):
    # QA: the bundled dates T5 has no probe; the hint said "SOURCE: the model it was exported
    # from", but its source is the folder's own training/ (`--add-probe` from it works).
    folder = tmp_path / "trained-here"
    shutil.copytree(tiny_llama_dir, folder, ignore=shutil.ignore_patterns("probe_model.onnx*"))
    (folder / "training").mkdir()
    shutil.copy(folder / "config.json", folder / "training" / "config.json")
    model = load_model(folder, provider="cpu", threads=1)
    with pytest.raises(NoProbeGraphError) as raised:
        model.inspect([5, 6])
    assert f"tokenglass-export {folder / 'training'} --out {folder} --add-probe" in str(
        raised.value
    )
