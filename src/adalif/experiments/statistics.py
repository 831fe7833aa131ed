"""What a comparison over seeds can conclude: per variant the mean, the standard deviation and a
95 % confidence interval of the accuracy (Student's t over the seeds), and a paired t-test against
the baseline variant over the seeds both ran (the same seed gives both variants the same
initialisation draw sequence and data order, so the difference per seed is the paired sample).

scipy's ``t`` distribution and ``ttest_rel`` do the arithmetic; this module only decides what is
paired with what and how the result reads.
"""

from __future__ import annotations

import math
import statistics
from typing import Dict, List, NamedTuple, Optional, Sequence

__all__ = ["Summary", "Paired", "summarise", "paired_test", "describe", "describe_paired", "seeds_of", "SIGNIFICANCE"]

#: The p-value below which a difference is called significant.
SIGNIFICANCE = 0.05


class Summary(NamedTuple):
    """One variant's accuracies over ``n`` seeds: mean, sample standard deviation, and the 95 %
    confidence interval of the mean ``[low, high]`` (None with a single seed)."""

    n: int
    mean: float
    std: Optional[float]
    low: Optional[float]
    high: Optional[float]


class Paired(NamedTuple):
    """A variant against the baseline over their common seeds: the mean difference (variant minus
    baseline), the two-sided p-value of the paired t-test (None with fewer than 2 pairs, or when
    every difference is the same), and whether it is below :data:`SIGNIFICANCE`."""

    n: int
    difference: float
    p: Optional[float]
    significant: bool


def summarise(values: Sequence[float]) -> Summary:
    """Mean, standard deviation and 95 % confidence interval of ``values`` (one per seed)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        raise ValueError("summarise: expected at least one value")
    mean = statistics.fmean(values)
    if n == 1:
        return Summary(1, mean, None, None, None)
    std = statistics.stdev(values)
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def paired_test(variant: Dict[int, float], baseline: Dict[int, float]) -> Paired:
    """The paired t-test of ``variant`` against ``baseline`` (``{seed: accuracy}``) over the seeds
    both have."""
    from scipy import stats

    seeds = sorted(set(variant) & set(baseline))
    differences = [variant[s] - baseline[s] for s in seeds]
    mean = statistics.fmean(differences) if differences else float("nan")
    if len(seeds) < 2 or len(set(differences)) == 1:
        # No spread to test against: with one pair there is no test; identical differences (all 0:
        # the same run twice) have no variance, and the t statistic is undefined.
        return Paired(len(seeds), mean, None, False)
    p = float(stats.ttest_rel([variant[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
    return Paired(len(seeds), mean, p, p < SIGNIFICANCE)


def describe(summary: Summary, scale: float = 100.0) -> str:
    """``97.31 ± 0.42 [96.80, 97.83]`` (mean ± std [95 % CI]), in percent by default."""
    if summary.std is None:
        return f"{scale * summary.mean:.2f}"
    return f"{scale * summary.mean:.2f} ± {scale * summary.std:.2f} [{scale * summary.low:.2f}, {scale * summary.high:.2f}]"


def describe_paired(paired: Optional[Paired], scale: float = 100.0) -> str:
    """``+12.40, p = 0.0003`` or ``-0.20, p = 0.61 (not significant)``; ``baseline`` for the
    baseline itself (None), and what is missing when there is no test."""
    if paired is None:
        return "baseline"
    text = f"{scale * paired.difference:+.2f}"
    if paired.p is None:
        if paired.n >= 2:  # every seed gave the same difference: no spread to test against
            return f"{text}, no test (the same difference on all {paired.n} seeds)"
        return f"{text}, no test ({paired.n} paired seed{'s' if paired.n != 1 else ''})"
    return f"{text}, p = {paired.p:.2g}" + ("" if paired.significant else " (not significant)")


def seeds_of(names: List[str]) -> Dict[str, Dict[int, str]]:
    """Run names ``<variant>_s<seed>`` grouped by variant: ``{variant: {seed: name}}``; a name
    without the suffix is a variant of one run (seed 0)."""
    import re

    groups: Dict[str, Dict[int, str]] = {}
    for name in names:
        match = re.fullmatch(r"(.+)_s(\d+)", name)
        variant, seed = (match.group(1), int(match.group(2))) if match else (name, 0)
        groups.setdefault(variant, {})[seed] = name
    return groups
