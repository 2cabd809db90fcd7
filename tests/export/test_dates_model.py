"""The bundled dates model (model_export.dates_model): its data, its gate, its export, its answers.

The data and gate tests are pure Python. The others read the model `make model` built (the
`dates_model_dir` fixture; built into the test cache when missing): the recipe's accuracy gate as
recorded, export parity, and the app's engine giving PyTorch's greedy answers, all right, on 50
held-out dates.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest

from model_export import dates_data
from model_export.dates_model import (
    GATE,
    HELDOUT,
    TITLE,
    dates_tokenizer,
    onnx_answers,
    require_gate,
)
from model_export.errors import ExportError

MARCH_3 = dt.date(2021, 3, 3)  # a Wednesday


def _training(folder: Path) -> dict:
    return json.loads((folder / "training" / "heldout.json").read_text())


def test_each_form_writes_the_date_as_the_issue_shows():
    rng = random.Random(3)
    texts = {
        form: dates_data.FORMS[form](MARCH_3, rng).lower() for form in dates_data.FORMS
    }  # fmt: skip
    assert texts["day month year"] == "3 march 2021"
    assert texts["month day, year"] == "march 3, 2021"
    assert texts["ordinal of month year"] == "3rd of march 2021"
    assert texts["abbreviated month day year"] == "mar 3 2021"
    assert texts["weekday, day month year"] in {"wednesday, 3 march 2021", "wed, 3 march 2021"}
    assert texts["year/month/day"] in {"2021/3/3", "2021/03/3", "2021/3/03", "2021/03/03"}
    assert texts["day.month.year"] in {"3.3.2021", "03.3.2021", "3.03.2021", "03.03.2021"}
    assert texts["month/day/year (US)"] in {"3/3/2021", "03/3/2021", "3/03/2021", "03/03/2021"}


def test_numeric_conventions_and_abbreviations():
    rng = random.Random(0)
    april_3 = dt.date(2021, 4, 3)
    us = {dates_data.FORMS["month/day/year (US)"](april_3, rng) for _ in range(40)}
    european = {dates_data.FORMS["day.month.year"](april_3, rng) for _ in range(40)}
    assert "4/3/2021" in us and "04/03/2021" in us  # month first
    assert "3.4.2021" in european and "03.04.2021" in european  # day first
    assert dates_data.FORMS["year/month/day"](april_3, rng) in {"2021/4/3", "2021/04/03"} | {
        "2021/04/3",
        "2021/4/03",
    }
    september = {
        dates_data.FORMS["abbreviated month day year"](dt.date(1999, 9, 21), rng).split()[0]
        for _ in range(40)
    }
    assert september == {"Sep", "Sept"}
    assert [dates_data.ordinal(d) for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st",
    ]  # fmt: skip


def test_weekdays_are_right_and_case_is_random():
    rng = random.Random(1)
    words = set()
    for index in random.Random(2).sample(range(dates_data.DAYS), 300):
        date = dates_data.date_at(index)
        text = dates_data.render(date, rng, "weekday, day month year")
        weekday = text.split(",")[0]
        assert weekday.lower() in {date.strftime("%A").lower(), date.strftime("%a").lower()}
        words.add(weekday)
    assert any(w.isupper() for w in words) and any(w.islower() for w in words)
    assert any(w[0].isupper() and w[1:].islower() for w in words)


def test_dates_span_1900_to_2099_and_heldout_dates_never_come_up_in_training():
    assert dates_data.date_at(0) == dt.date(1900, 1, 1)
    assert dates_data.date_at(dates_data.DAYS - 1) == dt.date(2099, 12, 31)
    heldout = dates_data.heldout_examples(0, HELDOUT)
    assert len({answer for _, answer in heldout}) == HELDOUT
    sample, rng = dates_data.training_sampler(0, HELDOUT), random.Random(5)
    trained = {sample(rng)[1] for _ in range(20_000)}
    assert not trained & {answer for _, answer in heldout}
    forms_seen = {text.split(" ")[0].isdigit() for text, _ in heldout}
    assert forms_seen == {True, False}


def test_tokenizer_gives_each_digit_its_own_token_and_ignores_case():
    tok = dates_tokenizer()
    pieces = tok.tokenize("2021-03-03")
    assert pieces == ["2", "0", "2", "1", "-", "0", "3", "-", "0", "3"]
    assert (
        tok("WEDNESDAY, 3 March 2021")["input_ids"] == tok("wednesday, 3 march 2021")["input_ids"]
    )
    ids = tok("Sept 30 1999")["input_ids"]
    assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
    assert tok.decode(tok("2099-12-31")["input_ids"], skip_special_tokens=True) == "2099-12-31"


def test_the_gate_fails_the_build_below_99_5_percent():
    metrics = {"heldout_accuracy": 0.9945, "heldout": 2000, "steps": 3000}
    with pytest.raises(ExportError, match=r"99.45% right on 2000 held-out dates.*99.5% needed"):
        require_gate(metrics)
    require_gate({**metrics, "heldout_accuracy": GATE})  # exactly the gate passes


def test_recipe_met_the_gate_on_2000_heldout_dates(dates_model_dir: Path):
    record = _training(dates_model_dir)
    assert record["metrics"]["heldout"] == HELDOUT == len(record["examples"])
    assert record["metrics"]["heldout_accuracy"] >= GATE
    assert record["examples"] == [list(p) for p in dates_data.heldout_examples(0, HELDOUT)]
    report = json.loads((dates_model_dir / "export_report.json").read_text())
    assert report["training"]["heldout_accuracy"] >= GATE
    assert report["title"] == TITLE
    assert "dates" in dates_model_dir.name


def test_export_parity(dates_model_dir: Path):
    report = json.loads((dates_model_dir / "export_report.json").read_text())
    check = report["check"]
    assert check["failures"] == []
    assert max(check["logits"]["max_abs_diff"]) <= 1e-3
    assert check["greedy"]["equal"] is True
    int8 = report["int8"]
    assert int8["shipped"] == (int8["heldout_answers_differing"] == 0)
    shipped = (dates_model_dir / "onnx" / "encoder_model_int8.onnx").is_file()
    assert shipped == int8["shipped"]


def test_engine_answers_50_heldout_dates_as_pytorch_does_and_right(dates_model_dir: Path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from desktop.engine.chat import load_model
    from desktop.engine.events import GenerationDone, Message
    from model_export.seq2seq_train import greedy_answers

    examples = _training(dates_model_dir)["examples"][:50]
    texts = [text for text, _ in examples]
    training = dates_model_dir / "training"
    torch_model = AutoModelForSeq2SeqLM.from_pretrained(str(training)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(training))
    reference = greedy_answers(torch_model, tokenizer, texts, max_new_tokens=11)
    engine = load_model(dates_model_dir, provider="cpu", threads=1)
    settings = engine.default_settings()
    assert settings.temperature == 0.0  # the folder says greedy
    replies = []
    for text in texts:
        done = list(engine.generate([Message("user", text)], settings, None))[-1]
        assert isinstance(done, GenerationDone) and done.finish_reason == "stop"
        replies.append(done.text)
    assert replies == reference
    assert replies == [answer for _, answer in examples]


def test_fp32_onnx_answers_equal_the_right_answers(dates_model_dir: Path):
    """The exported float32 graphs alone (no engine): the same 50 held-out dates, all right."""
    from transformers import AutoConfig, AutoTokenizer

    examples = _training(dates_model_dir)["examples"][50:100]
    config = AutoConfig.from_pretrained(dates_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(dates_model_dir)
    answers = onnx_answers(dates_model_dir, config, tokenizer, [t for t, _ in examples])
    assert answers == [answer for _, answer in examples]


def test_catalog_lists_it_as_an_encoder_decoder_with_its_title(dates_model_dir: Path, capsys):
    from desktop import paths
    from desktop.cli import main as cli_main
    from desktop.engine.catalog import list_models
    from desktop.ui.model_controller import model_label

    (paths.models_dir() / paths.DATES_MODEL_NAME).symlink_to(dates_model_dir)
    (info,) = list_models()
    assert info.kind == "encoder-decoder" and "dates" in info.name and info.family == "t5"
    assert info.title == TITLE == model_label(info)
    assert cli_main(["models", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["kind"] == "encoder-decoder" and "dates" in row["name"] and row["title"] == TITLE
