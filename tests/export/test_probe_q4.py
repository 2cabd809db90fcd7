"""The probe made from a fused 4-bit chat graph (model_export/probe_q4.py), on the wide tiny Llama
GGUF's export (Q4_1 layers, a Q8_0 tied embedding, the rescored lm_head, GroupQueryAttention with
4 query heads over 2 KV heads): it reads the chat graph's own data file, its last layer's lens is
the chat graph's own next-token distribution at every position of a greedy reply, and its
attention is softmax(QKᵀ·scale + causal mask) of that graph's own rotated Q and K."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from desktop.engine.chat import load_model
from desktop.engine.events import GenerationSettings, Message, TokenStep
from model_export.default_model import add_q4_probe, has_q4_probe, write_q4_probe
from model_export.errors import ExportError
from model_export.probe_q4 import build_q4_probe

IDS = [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]


@pytest.fixture
def q4_folder(fused_export, tmp_path) -> Path:
    """A copy of the fused export without its float32 graphs (as the default model ships)."""
    source, _ = fused_export
    folder = tmp_path / "wide"
    shutil.copytree(
        source, folder, ignore=shutil.ignore_patterns("model.onnx*", "probe_model.onnx*")
    )
    return folder


def _session(path: Path | bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        path if isinstance(path, bytes) else str(path), options, providers=["CPUExecutionProvider"]
    )


def test_probe_is_a_graph_that_reads_the_chat_graphs_data_file(q4_folder):
    section = write_q4_probe(q4_folder)
    probe = q4_folder / "onnx" / "probe_model.onnx"
    data = q4_folder / "onnx" / "model_q4.onnx.data"
    assert section["bytes"] == probe.stat().st_size < 64 * 1024  # the graph alone
    assert section["shared_with"] == ["model_q4.onnx.data"]
    assert section["shared_bytes"] == data.stat().st_size
    assert (
        section["check"]["top1_equal"] and section["check"]["lens_last_layer_max_abs_diff"] < 1e-3
    )
    proto = onnx.load(str(probe), load_external_data=False)
    inline = [t for t in proto.graph.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
    # only tensors under 1 KiB inline (the chat graph keeps those inline too: norms, shapes)
    assert max(len(t.raw_data) for t in inline) < 1024
    chat = onnx.load(str(q4_folder / "onnx" / "model_q4.onnx"), load_external_data=False)
    own = [t for t in inline if t.name not in {c.name for c in chat.graph.initializer}]
    assert all(t.name.startswith("/probe/") and t.data_type == onnx.TensorProto.INT64 for t in own)
    assert all(len(t.raw_data) <= 3 * 8 for t in own)  # axes, shapes, layer indices
    external = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    locations = {e.value for t in external for e in t.external_data if e.key == "location"}
    assert locations == {"model_q4.onnx.data"} and len(external) > 10
    assert [i.name for i in proto.graph.input] == ["input_ids", "positions"]
    assert [o.name for o in proto.graph.output] == ["attentions", "lens_logprobs", "lens_ids"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["form"] == "q4" and props["layers"] == "2" and props["heads"] == "4"
    assert has_q4_probe(q4_folder)


def test_last_layer_lens_is_the_chat_graphs_distribution_at_every_reply_position(q4_folder):
    build_q4_probe(q4_folder / "onnx" / "model_q4.onnx")
    model = load_model(q4_folder, provider="cpu", threads=1)
    assert model.manifest.graphs["decoder"].name == "model_q4.onnx"
    settings = GenerationSettings(max_new_tokens=16, temperature=0.0, top_logprobs=10)
    events = list(model.generate([Message("user", "Hello there")], settings))
    prompt = list(events[0].prompt_ids)
    steps = [e for e in events if isinstance(e, TokenStep)]
    assert len(steps) >= 8
    ids = [*prompt, *(s.id for s in steps)]
    rows = [len(prompt) - 1 + s.index for s in steps]  # the position that predicted each token
    got = model.inspect(ids, positions=rows, top_k=10)
    assert got.lens_ids.shape == (2, len(rows), 10)
    assert got.lens_ids[-1, :, 0].tolist() == [s.id for s in steps]  # greedy: the chat's top-1
    for row, step in enumerate(steps):  # the app's own log-probabilities (from model_q4.onnx)
        want = {a.id: a.logprob for a in step.top}
        ids, logprobs = got.lens_ids[-1, row].tolist(), got.lens_logprobs[-1, row].tolist()
        lens = dict(zip(ids, logprobs, strict=True))
        shared = sorted(set(want) & set(lens))
        assert len(shared) >= 8
        np.testing.assert_allclose([lens[i] for i in shared], [want[i] for i in shared], atol=1e-3)
    # every layer's lens is a distribution's top, best first
    assert (np.diff(got.lens_logprobs, axis=-1) <= 0).all() and (got.lens_logprobs <= 0).all()


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotary embedding, halves not interleaved (GroupQueryAttention rotary_interleaved=0):
    x (heads, seq, hd), cos/sin (seq, hd/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def test_attention_is_softmax_of_the_graphs_own_rotated_q_and_k(q4_folder):
    probe_path = q4_folder / "onnx" / "probe_model.onnx"
    build_q4_probe(q4_folder / "onnx" / "model_q4.onnx")
    proto = onnx.load(str(probe_path), load_external_data=False)
    nodes = [n for n in proto.graph.node if n.op_type == "GroupQueryAttention"]
    attrs = {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}
    heads, kv_heads, scale = attrs["num_heads"], attrs["kv_num_heads"], attrs["scale"]
    for node in nodes:  # expose each layer's packed Q/K/V and its rotated K (present key)
        for name in (node.input[0], node.output[1]):
            proto.graph.output.append(helper.make_tensor_value_info(name, 1, None))
    onnx.save_model(proto, str(probe_path.with_name("debug.onnx")))
    session = _session(probe_path.with_name("debug.onnx"))
    rows = np.array([0, 5, len(IDS) - 1])
    out = session.run(None, {"input_ids": np.array([IDS]), "positions": rows})
    attentions = out[0][:, 0]  # (L, heads, rows, seq)
    full = onnx.load(str(probe_path))  # with the weights, for the rotary tables
    tables = {t.name: numpy_helper.to_array(t) for t in full.graph.initializer}
    seq = len(IDS)
    cos, sin = tables[nodes[0].input[7]][:seq], tables[nodes[0].input[8]][:seq]  # (seq, hd/2)
    np.testing.assert_allclose(attentions.sum(-1), 1.0, atol=1e-5)
    for layer in range(len(nodes)):
        qkv, present_key = out[3 + 2 * layer][0], out[4 + 2 * layer][0]  # (seq, ...), (kv, seq, hd)
        hd = present_key.shape[-1]
        q = qkv[:, : heads * hd].reshape(seq, heads, hd).transpose(1, 0, 2)  # (heads, seq, hd)
        k = qkv[:, heads * hd : (heads + kv_heads) * hd].reshape(seq, kv_heads, hd)
        k = _rotate(k.transpose(1, 0, 2), cos, sin)  # (kv, seq, hd)
        np.testing.assert_allclose(k, present_key, atol=1e-5)  # the same rotation as the kernel
        q = _rotate(q, cos, sin)
        scores = q @ np.repeat(k, heads // kv_heads, axis=0).transpose(0, 2, 1) * scale
        scores = np.where(np.tril(np.ones((seq, seq), bool)), scores, -np.inf)  # (heads, S, S)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        np.testing.assert_allclose(attentions[layer], probs[:, rows], atol=1e-5)
        assert (attentions[layer][:, 0, 1:] == 0).all()  # the first token sees only itself


def test_attention_and_lens_close_to_the_float32_probe(fused_export, q4_folder):
    """The float32 probe (PyTorch eager, from the same GGUF dequantized exactly) computes the
    same model with float32 kernels: the same attention within 1e-4 and the same lens top-1."""
    build_q4_probe(q4_folder / "onnx" / "model_q4.onnx")
    feeds = {"input_ids": np.array([IDS]), "positions": np.arange(len(IDS))}
    q4 = _session(q4_folder / "onnx" / "probe_model.onnx").run(None, feeds)
    fp32 = _session(fused_export[0] / "onnx" / "probe_model.onnx").run(None, feeds)
    np.testing.assert_allclose(q4[0], fp32[0], atol=1e-4)
    np.testing.assert_array_equal(q4[2][..., 0], fp32[2][..., 0])


def test_add_to_an_installed_folder_records_it(q4_folder):
    report_path = q4_folder / "export_report.json"
    assert not has_q4_probe(q4_folder)
    section = add_q4_probe(q4_folder)
    report = json.loads(report_path.read_text())
    assert report["probe"] == section and "quantized" in report  # the rest of the report kept
    assert report["file_sizes"]["onnx/probe_model.onnx"] == section["bytes"]
    assert report["folder_bytes"] == sum(report["file_sizes"].values())
    assert not [p for p in (q4_folder / "onnx").iterdir() if p.name.startswith(".")]


def test_a_graph_without_external_data_or_attention_is_refused(q4_folder, tmp_path):
    chat = onnx.load(str(q4_folder / "onnx" / "model_q4.onnx"))  # weights read in
    inline = q4_folder / "onnx" / "inline.onnx"
    onnx.save_model(chat, str(inline))
    with pytest.raises(ExportError, match="external data"):
        build_q4_probe(inline)
    del chat.graph.node[:]
    with pytest.raises(ExportError, match="GroupQueryAttention"):
        bare = q4_folder / "onnx" / "bare.onnx"
        onnx.save_model(chat, str(bare), save_as_external_data=True, location="bare.data")
        build_q4_probe(bare)


def test_lens_layer_by_layer_equals_the_merged_lm_head(q4_folder):
    """Past MERGED_ROWS lens rows (layers x rows) the lm_head runs layer by layer instead of
    once over all rows: the same values either way."""
    from model_export.probe_q4_lens import MERGED_ROWS

    build_q4_probe(q4_folder / "onnx" / "model_q4.onnx")
    session = _session(q4_folder / "onnx" / "probe_model.onnx")
    ids = np.array([[(7 * i + 3) % 400 for i in range(200)]])
    rows = np.arange(200)
    assert 2 * len(rows) > MERGED_ROWS >= 2 * 100
    _, each_values, each_ids = session.run(None, {"input_ids": ids, "positions": rows})
    for part in (rows[:100], rows[100:]):
        _, values, top_ids = session.run(None, {"input_ids": ids, "positions": part})
        np.testing.assert_allclose(values, each_values[:, :, part], atol=1e-4)
        assert (top_ids[..., 0] == each_ids[:, :, part, 0]).mean() > 0.99  # ties may reorder


def test_make_model_adds_the_probe_to_a_current_folder_without_a_rebuild(q4_folder):
    """A default model folder of this recipe built before the probe (or holding the old float32
    probe, here a stand-in without the q4 mark) gets the probe from its model_q4.onnx: no
    download, no export."""
    from desktop import paths
    from model_export.default_model import RECIPE, build_default_model

    folder = paths.default_model_dir()
    shutil.copytree(q4_folder, folder)
    report = json.loads((folder / "export_report.json").read_text())
    (folder / "export_report.json").write_text(json.dumps({**report, "recipe": RECIPE}))
    (folder / "onnx" / "probe_model.onnx").write_bytes(b"not the q4 probe")
    assert build_default_model() == folder
    assert has_q4_probe(folder) and not (paths.cache_dir() / "wheels").exists()
    assert json.loads((folder / "export_report.json").read_text())["recipe"] == RECIPE
    stamp = (folder / "onnx" / "probe_model.onnx").stat().st_mtime_ns
    build_default_model()  # now current, probe included: nothing to do
    assert (folder / "onnx" / "probe_model.onnx").stat().st_mtime_ns == stamp


def test_a_probe_that_cannot_be_made_is_left_out_and_the_report_says_why(q4_folder, capsys):
    chat = q4_folder / "onnx" / "model_q4.onnx"
    onnx.save_model(onnx.load(str(chat)), str(chat))  # weights inline: nothing to share
    section = add_q4_probe(q4_folder)
    assert section["file"] is None and "external data" in section["error"]
    assert not (q4_folder / "onnx" / "probe_model.onnx").exists()
    assert json.loads((q4_folder / "export_report.json").read_text())["probe"] == section
    assert "no probe graph" in capsys.readouterr().err
    model = load_model(q4_folder, provider="cpu", threads=1)  # it still chats
    assert model.manifest.probe_graph is None
