"""I6 (top-k keeps exactly k tokens, ties to the lower id) and the one table of setting ranges that
the engine checks and the CLI's argparse reads (issue 17: `--top-p 0` was refused by the CLI and
accepted by the engine and the window)."""

from __future__ import annotations

import numpy as np
import pytest

from desktop.cli import main
from desktop.engine.errors import EngineError, SettingsError
from desktop.engine.events import MAX_SEED, SETTING_RANGES, GenerationSettings
from desktop.engine.sampling import Sampler, sampling_distribution

NO_IDS = np.array([], np.int64)


@pytest.mark.parametrize("seed", range(10))
def test_i6_top_k_1_between_two_tied_tokens_is_the_lower_id(seed):
    logits = np.array([0.5, 3.0, -1.0, 3.0], dtype=np.float32)
    settings = GenerationSettings(temperature=1.0, top_k=1)
    token, probs = Sampler(settings, seed).sample(logits, NO_IDS)
    assert token == 1
    np.testing.assert_array_equal(probs, [0.0, 1.0, 0.0, 0.0])


def test_i6_top_k_keeps_exactly_k_when_the_kth_score_is_tied():
    logits = np.array([1.0, 2.0, 1.0, 0.0, 1.0], dtype=np.float32)  # ids 0, 2, 4 tie at 2nd
    probs = sampling_distribution(logits, GenerationSettings(temperature=1.0, top_k=2))
    assert np.count_nonzero(probs) == 2
    e = np.exp(1.0)
    np.testing.assert_allclose(probs, [1 / (1 + e), e / (1 + e), 0, 0, 0], rtol=1e-6)
    probs = sampling_distribution(logits, GenerationSettings(temperature=1.0, top_k=3))
    assert list(np.flatnonzero(probs)) == [0, 1, 2]


def test_i6_top_k_on_a_vocabulary_sized_row_keeps_k():
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 5, size=50_000).astype(np.float32)  # thousands of ties
    probs = sampling_distribution(logits, GenerationSettings(temperature=1.0, top_k=40))
    kept = np.flatnonzero(probs)
    assert kept.size == 40
    np.testing.assert_array_equal(kept, np.flatnonzero(logits == 4)[:40])


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("max_new_tokens", 0),
        ("temperature", -0.1),
        ("temperature", float("nan")),
        ("top_k", -1),
        ("top_p", 1.5),
        ("top_p", -0.01),
        ("min_p", 2.0),
        ("repetition_penalty", 0.0),
        ("seed", -1),
        ("seed", MAX_SEED + 1),
        ("top_logprobs", 51),
        ("top_k", 2.5),
    ],
)
def test_settings_out_of_range_raise_settings_error(name, bad):
    with pytest.raises(SettingsError, match=f"^{name} must be "):
        GenerationSettings(**{name: bad})
    assert issubclass(SettingsError, EngineError)


def test_every_range_edge_is_accepted():
    for name, allowed in SETTING_RANGES.items():
        if allowed.low is not None and not allowed.above:
            GenerationSettings(**{name: allowed.kind(allowed.low)})
        if allowed.high is not None:
            GenerationSettings(**{name: allowed.kind(allowed.high)})


def test_top_p_zero_is_accepted_everywhere_and_keeps_the_top_token(capsys, tiny_llama_dir):
    """E3 and one range: top_p 0 keeps the most likely token, in the engine and the CLI."""
    logits = np.array([0.1, 3.0, 2.9], dtype=np.float32)
    probs = sampling_distribution(logits, GenerationSettings(temperature=1.0, top_p=0.0))
    np.testing.assert_array_equal(probs, [0.0, 1.0, 0.0])
    base = ["chat", "--model", str(tiny_llama_dir), "--no-save", "--max-new-tokens", "4", "Hi"]
    assert main([*base, "--top-p", "0", "--temperature", "1"]) == 0
    greedy = capsys.readouterr().out
    assert main([*base, "--temperature", "0"]) == 0
    assert capsys.readouterr().out == greedy


@pytest.mark.parametrize(
    ("flag", "value", "rule"),
    [
        ("--top-p", "1.5", ">= 0 and <= 1"),
        ("--top-logprobs", "51", ">= 0 and <= 50"),
        ("--repetition-penalty", "0", "> 0"),
        ("--seed", str(MAX_SEED + 1), f">= 0 and <= {MAX_SEED}"),
    ],
)
def test_cli_refuses_what_the_engine_refuses_with_its_rule(capsys, flag, value, rule):
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", flag, value, "Hi"])
    assert exit_info.value.code == 2
    assert f"must be {rule}, got {value}" in capsys.readouterr().err
