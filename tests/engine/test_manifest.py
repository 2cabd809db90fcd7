"""Model folders: normalized manifests, clear errors for broken or foreign folders, the catalog."""

from __future__ import annotations

import json
import shutil

import pytest

from desktop import paths
from desktop.engine.catalog import list_models, resolve_model
from desktop.engine.chat import load_model
from desktop.engine.errors import ModelFolderError
from desktop.engine.manifest import read_manifest


def test_decoder_and_seq2seq_manifests(tiny_llama_dir, tiny_t5_dir):
    llama = read_manifest(tiny_llama_dir)
    assert (llama.kind, llama.family, llama.precision) == ("decoder", "llama", "fp32")
    assert set(llama.graphs) == {"decoder"} and llama.context_size == 256
    assert llama.eos_ids == {0, 2} and llama.size_bytes > 0
    t5 = read_manifest(tiny_t5_dir)
    assert t5.kind == "encoder-decoder" and set(t5.graphs) == {"encoder", "decoder"}
    assert t5.decoder_start_id == 0 and 1 in t5.eos_ids


def test_quantized_variant_is_preferred(tiny_llama_dir, tmp_path):
    folder = shutil.copytree(tiny_llama_dir, tmp_path / "m")
    shutil.copy(folder / "onnx" / "model.onnx", folder / "onnx" / "model_int8.onnx")
    manifest = read_manifest(folder)
    assert manifest.precision == "int8" and manifest.graphs["decoder"].name == "model_int8.onnx"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda f: shutil.rmtree(f), "is not a folder"),
        (lambda f: (f / "config.json").unlink(), "config.json is missing"),
        (lambda f: (f / "config.json").write_text("{oops"), "config.json is not valid JSON"),
        (lambda f: (f / "config.json").write_text("[1]"), "should hold a JSON object"),
        (lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json is missing"),
        (lambda f: shutil.rmtree(f / "onnx"), "expected onnx/model.onnx"),
        (lambda f: (f / "onnx" / "model.onnx").write_bytes(b"not onnx"), "could not be loaded"),
    ],
)
def test_broken_folder_errors_name_the_file(tiny_llama_dir, tmp_path, breakage, message):
    folder = shutil.copytree(tiny_llama_dir, tmp_path / "m")
    breakage(folder)
    with pytest.raises(ModelFolderError, match=message):
        load_model(folder, provider="cpu")


def test_foreign_graph_is_named(tiny_llama_dir, tiny_t5_dir, tmp_path):
    """An encoder graph where a decoder is expected: no logits output."""
    folder = shutil.copytree(tiny_llama_dir, tmp_path / "m")
    shutil.copy(tiny_t5_dir / "onnx" / "encoder_model.onnx", folder / "onnx" / "model.onnx")
    with pytest.raises(ModelFolderError, match=r"model\.onnx.*(KV cache|logits)"):
        load_model(folder, provider="cpu")


def test_encoder_without_decoder_is_named(tiny_t5_dir, tmp_path):
    folder = shutil.copytree(tiny_t5_dir, tmp_path / "m")
    (folder / "onnx" / "decoder_model_merged.onnx").unlink()
    with pytest.raises(ModelFolderError, match=r"encoder_model\.onnx has no decoder beside it"):
        read_manifest(folder)


def test_catalog_lists_and_resolves(tiny_llama_dir, tiny_t5_dir):
    with pytest.raises(ModelFolderError, match="model_export default"):
        resolve_model(None)
    shutil.copytree(tiny_llama_dir, paths.models_dir() / "tiny-llama")
    shutil.copytree(tiny_t5_dir, paths.models_dir() / "tiny-t5")
    (paths.models_dir() / "not-a-model").mkdir()
    models = {m.name: m for m in list_models()}
    assert set(models) == {"tiny-llama", "tiny-t5"}
    assert models["tiny-t5"].kind == "encoder-decoder" and models["tiny-llama"].family == "llama"
    assert resolve_model("tiny-llama") == paths.models_dir() / "tiny-llama"
    assert resolve_model(str(tiny_t5_dir)) == tiny_t5_dir
    with pytest.raises(ModelFolderError, match="installed: tiny-llama, tiny-t5"):
        resolve_model("nope")
    shutil.copytree(tiny_llama_dir, paths.default_model_dir())
    assert resolve_model(None) == paths.default_model_dir()
    assert json.loads((resolve_model(None) / "config.json").read_text())["model_type"] == "llama"


def test_title_comes_from_tokenglass_json_else_the_folder_name(tiny_t5_dir, tmp_path):
    folder = shutil.copytree(tiny_t5_dir, paths.models_dir() / "tiny-t5")
    assert read_manifest(folder).title == "tiny-t5"
    (folder / "tokenglass.json").write_text(json.dumps({"title": "Tiny T5 (test)"}))
    assert read_manifest(folder).title == "Tiny T5 (test)"
    (info,) = list_models()
    assert (info.name, info.title) == ("tiny-t5", "Tiny T5 (test)")
    (folder / "tokenglass.json").write_text(json.dumps({"title": "  "}))
    assert read_manifest(folder).title == "tiny-t5"  # a blank title is no title
    (folder / "tokenglass.json").write_text("[1]")
    with pytest.raises(ModelFolderError, match=r"tokenglass\.json should hold a JSON object"):
        read_manifest(folder)
