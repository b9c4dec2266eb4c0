"""A benchmark figure's ratio and its per-round spread (benchmarks/measure.py)."""

from __future__ import annotations

import pytest

from benchmarks.measure import Figure


def test_paired_rounds_give_per_round_ratios():
    figure = Figure("x", "x", "ms", [10.0, 30.0, 20.0], baseline_samples=[5.0, 10.0, 10.0], paired=True)
    assert figure.ratio_samples == [2.0, 3.0, 2.0]
    assert figure.ratio == 2.0  # median over median: 20 / 10
    assert figure.to_dict()["ratio_stats"]["median"] == 2.0


def test_unpaired_samples_give_no_per_round_ratios():
    figure = Figure("x", "x", "ms", [10.0, 30.0], baseline_samples=[5.0, 10.0, 10.0])
    assert figure.ratio_samples is None and figure.to_dict()["ratio_stats"] is None


def test_paired_needs_one_baseline_sample_per_round():
    with pytest.raises(ValueError):
        Figure("x", "x", "ms", [10.0, 30.0], baseline_samples=[5.0], paired=True)


def test_one_round_has_no_spread():
    assert Figure("x", "x", "ms", [10.0], baseline_samples=[5.0], paired=True).ratio_samples is None
