"""Sampling (cases E1-E5) and the per-row statistics, on hand-made logits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from desktop.engine.errors import SamplingError
from desktop.engine.events import GenerationSettings
from desktop.engine.sampling import (
    Sampler,
    apply_repetition_penalty,
    rank_of,
    row_stats,
    sampling_distribution,
)


def test_e1_repetition_penalty_divides_positive_multiplies_negative():
    logits = np.array([2.0, -2.0, 0.5], dtype=np.float32)
    out = apply_repetition_penalty(logits, np.array([0, 1, 1]), 2.0)
    np.testing.assert_allclose(out, [1.0, -4.0, 0.5])
    np.testing.assert_allclose(logits, [2.0, -2.0, 0.5])  # input untouched


@pytest.mark.parametrize("seed", range(20))
def test_e2_temperature_zero_is_greedy_without_nan(seed):
    sampler = Sampler(GenerationSettings(temperature=0.0), seed=seed)
    token, probs = sampler.sample(np.array([1.0, 2.0], dtype=np.float32), np.array([], np.int64))
    assert token == 1
    assert not np.isnan(probs).any()
    np.testing.assert_array_equal(probs, [0.0, 1.0])


@pytest.mark.parametrize("top_p", [1e-8, 0.0])
def test_e3_tiny_top_p_keeps_the_best_token(top_p):
    logits = np.array([0.1, 3.0, 2.9, -1.0], dtype=np.float32)
    settings = GenerationSettings(temperature=1.0, top_p=top_p)
    probs = sampling_distribution(logits, settings)
    np.testing.assert_array_equal(probs, [0.0, 1.0, 0.0, 0.0])
    for seed in range(5):
        assert Sampler(settings, seed).sample(logits, np.array([], np.int64))[0] == 1


@pytest.mark.parametrize(
    "logits", [[-np.inf, -np.inf, -np.inf], [np.nan, np.nan, np.nan], [np.nan, -np.inf, np.nan]]
)
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_e4_no_finite_logit_raises_sampling_error(logits, temperature):
    sampler = Sampler(GenerationSettings(temperature=temperature), seed=0)
    with pytest.raises(SamplingError, match="no usable scores"):
        sampler.sample(np.array(logits, dtype=np.float32), np.array([], np.int64))


def test_nan_among_finite_logits_is_never_picked():
    logits = np.array([np.nan, 1.0, 0.5], dtype=np.float32)
    probs = sampling_distribution(logits, GenerationSettings(temperature=1.0))
    assert probs[0] == 0.0
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-6)


def test_e5_same_seed_same_tokens_other_seed_differs():
    rng = np.random.default_rng(123)
    rows = rng.normal(size=(40, 64)).astype(np.float32)
    settings = GenerationSettings(temperature=1.0, top_k=20, top_p=0.95)

    def run(seed: int) -> list[int]:
        sampler = Sampler(settings, seed)
        return [sampler.sample(row, np.array([], np.int64))[0] for row in rows]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_top_k_keeps_exactly_k_and_min_p_cuts_relative_to_peak():
    logits = np.log(np.array([0.5, 0.25, 0.15, 0.1], dtype=np.float32))
    probs = sampling_distribution(logits, GenerationSettings(temperature=1.0, top_k=2))
    np.testing.assert_allclose(probs, [2 / 3, 1 / 3, 0, 0], rtol=1e-5)
    probs = sampling_distribution(logits, GenerationSettings(temperature=1.0, min_p=0.25))
    # min_p * max = 0.125: tokens with p >= 0.125 survive
    np.testing.assert_allclose(probs, np.array([0.5, 0.25, 0.15, 0]) / 0.9, rtol=1e-5)


def test_top_p_keeps_smallest_prefix_reaching_mass():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    probs = sampling_distribution(logits, GenerationSettings(temperature=1.0, top_p=0.8))
    np.testing.assert_allclose(probs, [0.5 / 0.8, 0.3 / 0.8, 0, 0], rtol=1e-5)


def test_sampled_frequencies_follow_the_distribution():
    logits = np.log(np.array([0.7, 0.2, 0.1], dtype=np.float32))
    sampler = Sampler(GenerationSettings(temperature=1.0), seed=1)
    draws = [sampler.sample(logits, np.array([], np.int64))[0] for _ in range(4000)]
    freq = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(freq, [0.7, 0.2, 0.1], atol=0.03)


def test_row_stats_match_a_direct_softmax():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=1000) * 3).astype(np.float32)
    stats = row_stats(logits, k=10)
    probs = np.exp(logits.astype(np.float64) - logits.max())
    probs /= probs.sum()
    expected_top = np.argsort(-probs)[:10]
    np.testing.assert_array_equal(stats.top_ids, expected_top)
    np.testing.assert_allclose(stats.top_logprobs, np.log(probs[expected_top]), rtol=1e-5)
    assert math.isclose(stats.entropy, float(-(probs * np.log(probs)).sum()), rel_tol=1e-5)
    token = int(expected_top[3])
    assert rank_of(logits, token) == 3
    assert math.isclose(stats.logprob(logits, token), math.log(probs[token]), rel_tol=1e-5)


def test_row_stats_with_masked_logits_has_finite_entropy():
    logits = np.array([0.0, -np.inf, 0.0, -np.inf], dtype=np.float32)
    stats = row_stats(logits, k=3)
    assert math.isclose(stats.entropy, math.log(2), rel_tol=1e-6)
    assert list(stats.top_ids[:2]) == [0, 2]


@pytest.mark.parametrize("size", [5, 1000, 49152, 49153])
@pytest.mark.parametrize("k", [0, 1, 10, 40])
def test_top_k_ids_equals_a_full_sort(size, k):
    from desktop.engine.sampling import top_k_ids

    rng = np.random.default_rng(size + k)
    row = rng.normal(size=size).astype(np.float32)
    row[rng.integers(0, size, size=3)] = row.max()  # ties at the top
    expected = np.lexsort((np.arange(size), -row))[: min(k, size)]
    np.testing.assert_array_equal(top_k_ids(row, k), expected)


def test_greedy_fast_path_with_nan_and_inf():
    sampler = Sampler(GenerationSettings(temperature=0.0), seed=0)
    token, probs = sampler.sample(np.array([np.nan, 1.0, 3.0], np.float32), np.array([], np.int64))
    assert token == 2 and probs[2] == 1.0
    token, _ = sampler.sample(np.array([np.inf, 1.0], np.float32), np.array([], np.int64))
    assert token == 0


@pytest.mark.parametrize("temperature", [1e-38, 1e-45, 1e-300])
def test_a_tiny_temperature_is_greedy_in_the_limit_not_nan(temperature):
    """QA 3, defect 3: row / 1e-38 overflowed float32 to inf, then inf - inf = NaN, and the reply
    became the last vocabulary id over and over."""
    rng = np.random.default_rng(1)
    logits = (rng.normal(size=4096) * 20).astype(np.float32)
    settings = GenerationSettings(temperature=temperature, top_p=0.9, repetition_penalty=1.0)
    probs = sampling_distribution(logits, settings)
    assert np.isfinite(probs).all() and probs[int(np.argmax(logits))] == 1.0
    token, _ = Sampler(settings, seed=3).sample(logits, np.array([], np.int64))
    assert token == int(np.argmax(logits))


def test_kept_probabilities_do_not_add_up_past_one():
    """QA 3, defect 7: float32 probabilities of the kept tokens summed to 1.0000000335."""
    rng = np.random.default_rng(2)
    for _ in range(50):
        logits = (rng.normal(size=49152) * 4).astype(np.float32)
        settings = GenerationSettings(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05)
        probs = sampling_distribution(logits, settings)
        assert probs.dtype == np.float64 and abs(probs.sum() - 1.0) < 1e-12
