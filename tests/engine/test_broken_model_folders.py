"""I14: every way a model folder can be broken gives a ModelFolderError (an EngineError) naming
the file, at load: each file of a decoder-only and an encoder-decoder folder truncated, emptied,
and filled with valid JSON of the wrong shape (a tokenizer.json that tokenizers rejects raised a
bare Exception; a broken chat_template.json raised JSONDecodeError)."""

from __future__ import annotations

import json
import shutil

import pytest

from desktop.cli import main
from desktop.engine.chat import load_model
from desktop.engine.errors import ChatTemplateError, EngineError, ModelFolderError
from desktop.engine.events import GenerationSettings, Message

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# valid JSON of the wrong shape, per file (besides a bare JSON array, tried for every file)
WRONG_SHAPES = {
    "config.json": [{"num_attention_heads": "four", "num_key_value_heads": None, "d_kv": []}],
    "generation_config.json": [
        {"temperature": "hot"},
        {"max_new_tokens": -3},
        {"suppress_tokens": "none"},
        {"eos_token_id": {"id": 2}},
    ],
    "tokenizer.json": [{"model": {"type": "BPE"}}, {"added_tokens": 5}, {"version": "1.0"}],
    "tokenizer_config.json": [{"chat_template": 5}, {"chat_template": [{"name": "default"}]}],
    "chat_template.json": [{"chat_template": 5}, {"template": CHATML}, {"chat_template": [7]}],
}


def folder_files(folder) -> list[str]:
    names = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()]
    return [n for n in names if n != "export_report.json" and n != "special_tokens_map.json"]


def corruptions(name: str, data: bytes) -> list[tuple[str, bytes]]:
    out = [("truncated", data[: len(data) // 2]), ("emptied", b""), ("array", b"[1, 2, 3]")]
    out += [(f"shape{i}", json.dumps(v).encode()) for i, v in enumerate(WRONG_SHAPES.get(name, []))]
    if name.endswith(".jinja"):
        out = [("truncated", data[: len(data) // 2]), ("not-utf8", b"\xff\xfe{{")]
    return out


def broken_copies(source, tmp_path, extra: dict[str, str]):
    """Yield (file name, corruption, folder) for every file and corruption."""
    base = tmp_path / "base"
    shutil.copytree(source, base)
    for name, text in extra.items():
        (base / name).write_text(text, encoding="utf-8")
    for name in folder_files(base):
        data = (base / name).read_bytes()
        for label, broken in corruptions(name.split("/")[-1], data):
            folder = tmp_path / f"{name.replace('/', '_')}-{label}"
            shutil.copytree(base, folder)
            (folder / name).write_bytes(broken)
            yield name, label, folder


def assert_names_the_file(folder, name: str) -> None:
    try:
        model = load_model(folder, provider="cpu", threads=1)
    except ModelFolderError as err:
        assert str(folder / name) in str(err), (name, str(err))
        assert "\n" not in str(err).strip()
        return
    except Exception as err:  # the point of the test: nothing outside the family
        raise AssertionError(f"{name}: {type(err).__name__}: {err}") from err
    raise AssertionError(f"{name} broken, yet {model} loaded")


@pytest.mark.parametrize(
    ("fixture", "extra"),
    [
        ("tiny_llama_dir", {"chat_template.jinja": CHATML}),
        ("tiny_llama_dir", {"chat_template.json": json.dumps({"chat_template": CHATML})}),
        ("tiny_t5_dir", {}),
    ],
)
def test_i14_every_file_broken_every_way_names_the_file(fixture, extra, request, tmp_path):
    source = request.getfixturevalue(fixture)
    seen = set()
    for name, _label, folder in broken_copies(source, tmp_path, extra):
        seen.add(name)
        assert_names_the_file(folder, name)
        shutil.rmtree(folder)
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= seen
    assert any(n.endswith(".onnx") for n in seen)


def test_i14_an_empty_chat_template_names_its_file_when_used(tiny_llama_dir, tmp_path):
    folder = shutil.copytree(tiny_llama_dir, tmp_path / "model")
    (folder / "chat_template.jinja").write_text(" \n", encoding="utf-8")
    model = load_model(folder, provider="cpu", threads=1)
    with pytest.raises(ChatTemplateError, match="empty") as err:
        list(model.generate([Message("user", "Hi")], GenerationSettings(max_new_tokens=1)))
    assert str(folder / "chat_template.jinja") in str(err.value)


def test_i14_the_cli_says_one_line(tiny_llama_dir, tmp_path, capsys):
    folder = shutil.copytree(tiny_llama_dir, tmp_path / "model")
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    assert main(["chat", "--model", str(folder), "--no-save", "Hi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tokenglass: ") and err.count("\n") == 1
    assert str(folder / "tokenizer.json") in err
    assert issubclass(ModelFolderError, EngineError)
