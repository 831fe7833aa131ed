"""The statistics of studies (adalif.experiments.statistics) against their textbook formulas."""

import math

import pytest

from adalif.experiments.statistics import describe, describe_paired, paired_test, seeds_of, summarise


def test_summary_is_the_mean_the_sample_std_and_students_95_percent_interval():
    s = summarise([0.90, 0.92, 0.94])
    assert s.mean == pytest.approx(0.92) and s.std == pytest.approx(0.02)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert (s.low, s.high) == (pytest.approx(0.92 - half), pytest.approx(0.92 + half))
    assert summarise([0.5]) == (1, 0.5, None, None, None)
    assert describe(s) == "92.00 ± 2.00 [87.03, 96.97]"


def test_paired_test_is_the_t_test_of_the_per_seed_differences():
    baseline = {0: 0.80, 1: 0.82, 2: 0.78, 3: 0.81}
    variant = {0: 0.85, 1: 0.86, 2: 0.84, 3: 0.83, 7: 0.99}  # seed 7 has no pair: left out
    d = [0.05, 0.04, 0.06, 0.02]
    mean, sd = sum(d) / 4, math.sqrt(sum((x - sum(d) / 4) ** 2 for x in d) / 3)
    t = mean / (sd / 2)
    # Two-sided p of Student's t with 3 degrees of freedom, in closed form.
    theta = math.atan(t / math.sqrt(3))
    p = 1 - 2 / math.pi * (theta + math.sin(theta) * math.cos(theta))
    got = paired_test(variant, baseline)
    assert got.n == 4 and got.difference == pytest.approx(mean) and got.p == pytest.approx(p, rel=1e-6)
    assert got.significant and describe_paired(got) == f"+{100 * mean:.2f}, p = {p:.2g}"


def test_a_difference_within_the_seed_spread_says_it_is_not_significant():
    got = paired_test({0: 0.81, 1: 0.80, 2: 0.83}, {0: 0.80, 1: 0.82, 2: 0.81})
    assert not got.significant and describe_paired(got).endswith("(not significant)")
    assert describe_paired(paired_test({0: 0.9}, {0: 0.8})) == "+10.00, no test (1 paired seed)"
    assert describe_paired(paired_test({0: 0.9, 1: 0.8}, {0: 0.9, 1: 0.8})) == "+0.00, no test (the same difference on all 2 seeds)"
    assert paired_test({0: 0.9, 1: 0.9}, {0: 0.9, 1: 0.9}).p is None  # no spread: no test
    assert describe_paired(None) == "baseline"


def test_runs_are_grouped_by_variant_and_seed():
    assert seeds_of(["lif_s0", "lif_s1", "dalif_s0", "solo"]) == {"lif": {0: "lif_s0", 1: "lif_s1"},
                                                                 "dalif": {0: "dalif_s0"}, "solo": {0: "solo"}}
