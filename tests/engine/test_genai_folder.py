"""onnxruntime-genai model folders (genai_config.json, the graph at the top level) open in the
engine, on a tiny Llama folder written by onnxruntime-genai's own builder; the engine's greedy
tokens on that graph equal onnxruntime-genai's own loop's."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from desktop.engine.chat import load_model
from desktop.engine.errors import ModelFolderError
from desktop.engine.events import Message
from desktop.engine.manifest import read_manifest


def test_genai_folder_reads_into_a_manifest(genai_folder):
    manifest = read_manifest(genai_folder)
    assert manifest.kind == "decoder" and manifest.family == "llama"
    assert manifest.graphs == {"decoder": genai_folder / "model.onnx"}
    assert manifest.size_bytes > (genai_folder / "model.onnx").stat().st_size  # + model.onnx.data
    assert manifest.context_size == 256  # genai's context_length
    assert manifest.eos_ids == {2}  # <|im_end|>: genai's eos_token_id and the tokenizer's eos
    assert manifest.share_kv_buffer is True  # search.past_present_share_buffer
    assert manifest.config["num_key_value_heads"] == 2 and manifest.config["head_dim"] == 16
    model = load_model(genai_folder, provider="cpu", threads=1)
    assert model.template is not None  # chat_template.jinja beside the graph
    settings = model.default_settings()
    assert settings.temperature == 0.0  # genai's search: do_sample false, i.e. greedy
    assert settings.repetition_penalty == 1.0


def test_engine_greedy_equals_onnxruntime_genai_on_its_own_graph(genai_folder):
    og = pytest.importorskip("onnxruntime_genai")
    model = load_model(genai_folder, provider="cpu", threads=1)
    ids = list(model.render_prompt([Message("user", "What is the capital of France?")]).prompt_ids)
    n = 16
    ours: list[int] = []
    logits = model._stepper.prefill(ids)  # float32[vocab]
    for _ in range(n):
        ours.append(int(np.argmax(logits)))
        logits = model._stepper.step(ours[-1])
    genai = og.Model(og.Config(str(genai_folder)))
    params = og.GeneratorParams(genai)
    params.set_search_options(max_length=len(ids) + n, do_sample=False)  # stops after an end id
    generator = og.Generator(genai, params)
    generator.append_tokens(ids)
    theirs = []
    while not generator.is_done():
        generator.generate_next_token()
        theirs.append(int(generator.get_next_tokens()[0]))
    assert len(theirs) > 4 and ours[: len(theirs)] == theirs


def _edit_config(folder, change) -> None:
    path = folder / "genai_config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["model"].pop("decoder"), "describes no decoder graph"),
        (
            lambda c: c["model"]["decoder"].update(filename="gone.onnx"),
            "gone.onnx, which is missing",
        ),
        (
            lambda c: c["model"]["decoder"]["inputs"].update(past_key_names="past_key_%d"),
            "names inputs past_key_names 'past_key_%d'",
        ),
        (lambda c: c["model"].update(vision={"filename": "v.onnx"}), "more than a decoder"),
    ],
)
def test_unreadable_genai_folders_are_named(genai_folder, tmp_path, change, message):
    folder = shutil.copytree(genai_folder, tmp_path / "m")
    _edit_config(folder, change)
    with pytest.raises(ModelFolderError, match=re.escape(message)):
        read_manifest(folder)


def test_broken_genai_config_is_named(genai_folder, tmp_path):
    folder = shutil.copytree(genai_folder, tmp_path / "m")
    (folder / "genai_config.json").write_text("{oops")
    with pytest.raises(ModelFolderError, match=r"genai_config\.json is not valid JSON"):
        read_manifest(folder)


def test_genai_folder_in_the_models_folder_is_listed(genai_folder):
    from desktop import paths
    from desktop.engine.catalog import list_models, resolve_model

    shutil.copytree(genai_folder, paths.models_dir() / "tiny-genai")
    listed = {m.name: m for m in list_models()}
    assert listed["tiny-genai"].precision == "genai" and listed["tiny-genai"].kind == "decoder"
    assert resolve_model("tiny-genai") == paths.models_dir() / "tiny-genai"
