"""The one OpenAI-shaped JSON module: non-finite numbers become null everywhere (case I15)."""

from __future__ import annotations

import dataclasses
import json
import math

from desktop.engine.events import Alternative, GenerationDone, GenerationSettings, TokenStep
from desktop.openai_json import done_json, dumps, token_json


def test_non_finite_numbers_are_null_and_the_text_is_strict_json():
    alt = Alternative(5, "x", b"x", -math.inf, 0.0, math.nan)
    step = TokenStep(0, 5, "x", "x", b"x", -math.inf, 0.0, 0.0, 3, math.nan, (alt,), math.inf)
    entry = token_json(step)
    assert entry["logprob"] is None and entry["entropy"] is None and entry["step_ms"] is None
    assert entry["top_logprobs"][0]["logprob"] is None
    assert entry["top_logprobs"][0]["sampling_prob"] is None
    text = dumps({"a": [math.inf, (1.5, -math.nan)], "entry": entry})
    assert json.loads(text)["a"] == [None, [1.5, None]]  # json.loads would accept Infinity
    assert "Infinity" not in text and "NaN" not in text


def test_done_reports_no_seed_for_a_greedy_reply():
    greedy = GenerationDone(
        "stop",
        "hi",
        3,
        1,
        1.0,
        math.inf,
        "CPU",
        42,
        settings=GenerationSettings(temperature=0.0, stop_strings=("\n",)),
    )
    fields = done_json(greedy)
    assert fields["seed"] is None and fields["decode_tokens_per_s"] is None
    assert fields["settings"]["stop_strings"] == ["\n"]
    sampled = GenerationDone("stop", "hi", 3, 1, 1.0, 2.0, "CPU", 42)
    assert done_json(sampled)["seed"] == 42


def test_forced_and_picked_appear_only_when_true():
    step = TokenStep(0, 5, "x", "x", b"x", -0.5, 0.6, 0.6, 0, 1.0, (), 1.0)
    plain = token_json(step)
    assert "forced" not in plain and "picked" not in plain
    forced = token_json(dataclasses.replace(step, forced=True))
    assert forced["forced"] is True and "picked" not in forced
    picked = token_json(dataclasses.replace(step, forced=True, picked=True))
    assert picked["forced"] is True and picked["picked"] is True
