"""Bootstrap confidence intervals and the paired bootstrap test.

A resample of report indices is represented by its count vector (how often each report was
drawn). Every metric here is computed from per-report statistics that add up (n-gram counts,
METEOR statistics, per-label TP/FP/FN, per-report scores), so a whole batch of resamples is one
matrix product ``counts @ per_report_stats``: 1,000 resamples of 4,000 reports take well under a
second per metric, with no metric recomputed from text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

# Resample rows per batch; bounds memory at about _MAX_CELLS float64 values.
_MAX_CELLS = 8_000_000


@dataclass(frozen=True)
class Statistic:
    """A metric: its point estimate and how to recompute it for many resamples at once.

    ``resample`` maps a (B, N) matrix of draw counts to the B metric values.
    """

    name: str
    value: float
    resample: Callable[[np.ndarray], np.ndarray]
    convention: str


def mean_statistic(
    name: str, per_report: np.ndarray, convention: str, value: float | None = None
) -> Statistic:
    """A metric that is the mean of per-report scores (ROUGE-L, CIDEr with fixed IDF, BERTScore)."""
    scores = np.asarray(per_report, dtype=np.float64)
    n = len(scores)
    point = float(np.mean(scores)) if value is None else float(value)
    return Statistic(name, point, lambda counts: counts @ scores / n, convention)


def resample_counts(n: int, samples: int, seed: int) -> Iterable[np.ndarray]:
    """Yield (b, n) count matrices, ``samples`` rows in total, reproducible from ``seed``."""
    if n <= 0:
        raise ValueError("cannot bootstrap zero reports")
    rng = np.random.default_rng(seed)
    rows = max(1, _MAX_CELLS // n)
    done = 0
    while done < samples:
        b = min(rows, samples - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + np.arange(b)[:, None] * n).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def bootstrap_distribution(
    statistics: Iterable[Statistic],
    n: int,
    samples: int,
    seed: int,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Metric values on ``samples`` resamples (the same resamples for every statistic).

    ``on_progress(k)`` is called after each batch of k resamples.
    """
    stats = list(statistics)
    out: dict[str, list[np.ndarray]] = {s.name: [] for s in stats}
    for counts in resample_counts(n, samples, seed):
        for s in stats:
            out[s.name].append(np.asarray(s.resample(counts), dtype=np.float64))
        if on_progress is not None:
            on_progress(len(counts))
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in out.items()}


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval; NaN resamples (undefined metric) are ignored."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def confidence_intervals(
    statistics: Iterable[Statistic],
    n: int,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, tuple[float, float]]:
    """95% (by default) percentile intervals for each statistic."""
    dist = bootstrap_distribution(statistics, n, samples, seed, on_progress)
    return {name: percentile_interval(vals, level) for name, vals in dist.items()}


def finite_or_none(x: float | None) -> float | None:
    """A metric value for JSON: NaN and infinities (an undefined metric) become None."""
    return None if x is None or not math.isfinite(x) else float(x)


def metric_entries(
    statistics: Iterable[Statistic], intervals: Mapping[str, tuple[float, float]]
) -> dict[str, dict]:
    """The one shape of a reported metric: {name: {value, ci_low, ci_high, convention}}."""
    return {
        s.name: {
            "value": finite_or_none(s.value),
            "ci_low": finite_or_none(intervals[s.name][0]) if s.name in intervals else None,
            "ci_high": finite_or_none(intervals[s.name][1]) if s.name in intervals else None,
            "convention": s.convention,
        }
        for s in statistics
    }


def reported_metrics(
    statistics: Iterable[Statistic], n: int, samples: int, seed: int
) -> dict[str, dict]:
    """`metric_entries` with each statistic's bootstrap interval (none when `samples` is 0)."""
    stats = list(statistics)
    cis = confidence_intervals(stats, n, samples, seed) if samples > 0 else {}
    return metric_entries(stats, cis)


@dataclass(frozen=True)
class PairedResult:
    """System A minus system B on one metric, from paired resamples."""

    a: float
    b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float  # one-sided: share of resamples in which A is not better than B


def paired_bootstrap(
    stats_a: Mapping[str, Statistic],
    stats_b: Mapping[str, Statistic],
    n: int,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, PairedResult]:
    """Paired bootstrap test (Koehn 2004) that A > B for every metric both systems have.

    Both systems are scored on the same resampled report indices; the p-value is the share of
    resamples where A's metric is <= B's (add-one smoothed so it is never exactly 0).
    """
    names = [k for k in stats_a if k in stats_b]
    # Same seed -> the same resampled indices for both systems (the pairing).
    dist_a = bootstrap_distribution([stats_a[k] for k in names], n, samples, seed, on_progress)
    dist_b = bootstrap_distribution([stats_b[k] for k in names], n, samples, seed, on_progress)
    results = {}
    for k in names:
        diff = dist_a[k] - dist_b[k]
        diff = diff[np.isfinite(diff)]
        low, high = percentile_interval(diff, level)
        p = (np.count_nonzero(diff <= 0) + 1) / (diff.size + 1)
        a, b = stats_a[k].value, stats_b[k].value
        results[k] = PairedResult(a, b, a - b, low, high, float(p))
    return results
