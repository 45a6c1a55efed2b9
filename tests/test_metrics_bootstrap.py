"""Bootstrap CIs and the paired test, on real IU report text."""

from __future__ import annotations

import numpy as np

from metrics_data import iu_reports, shuffled_pairs
from radialog.metrics.bootstrap import confidence_intervals, mean_statistic, paired_bootstrap
from radialog.metrics.clinical import clinical_statistics
from radialog.metrics.nlg import nlg_statistics


def _first_sentences(text: str) -> str:
    """A clearly better 'system' than shuffling: the reference minus its last sentence."""
    parts = [p for p in text.split(". ") if p]
    return ". ".join(parts[:-1]) + "." if len(parts) > 1 else text


def test_ci_contains_point_estimate():
    preds, refs = shuffled_pairs(300)
    stats = nlg_statistics(preds, refs, meteor=False).statistics()
    rng = np.random.default_rng(0)
    label_ref = rng.choice([1, 0, -1, np.nan], size=(300, 14))
    label_pred = np.where(
        rng.random((300, 14)) < 0.7, label_ref, rng.choice([1, 0, -1, np.nan], size=(300, 14))
    )
    stats += clinical_statistics(label_pred, label_ref, "ce_radialog_uncertain_negative")
    cis = confidence_intervals(stats, 300, samples=500, seed=1)
    for s in stats:
        low, high = cis[s.name]
        assert low <= s.value <= high, s.name
        assert high > low, s.name


def test_ci_narrows_with_more_reports():
    rng = np.random.default_rng(0)
    scores = rng.random(1600)
    widths = []
    for n in (100, 400, 1600):
        low, high = confidence_intervals([mean_statistic("x", scores[:n], "test")], n, 1000, 0)["x"]
        widths.append(high - low)
    assert widths[0] > 1.5 * widths[1] > 2.25 * widths[2]  # ~1/sqrt(n): halves per 4x reports


def test_ci_is_reproducible_from_seed():
    s = [mean_statistic("x", np.arange(50.0), "test")]
    assert confidence_intervals(s, 50, 200, seed=5) == confidence_intervals(s, 50, 200, seed=5)
    assert confidence_intervals(s, 50, 200, seed=5) != confidence_intervals(s, 50, 200, seed=6)


def test_paired_test_detects_the_better_system():
    shuffled, refs = shuffled_pairs(200)
    good = [_first_sentences(r) for r in refs]
    a = {s.name: s for s in nlg_statistics(good, refs, meteor=False).statistics()}
    b = {s.name: s for s in nlg_statistics(shuffled, refs, meteor=False).statistics()}
    result = paired_bootstrap(a, b, len(refs), samples=500, seed=0)
    for name in ("BLEU-4", "ROUGE-L", "CIDEr"):
        assert result[name].delta > 0 and result[name].ci_low > 0
        assert result[name].p_value < 0.01
    reverse = paired_bootstrap(b, a, len(refs), samples=500, seed=0)
    assert reverse["ROUGE-L"].p_value > 0.99


def test_paired_test_of_equal_systems_is_not_significant():
    refs = iu_reports(limit=120)
    rng = np.random.default_rng(2)
    a = [refs[i] for i in rng.permutation(120)]
    b = [refs[i] for i in rng.permutation(120)]
    sa = {s.name: s for s in nlg_statistics(a, refs, meteor=False).statistics()}
    sb = {s.name: s for s in nlg_statistics(b, refs, meteor=False).statistics()}
    result = paired_bootstrap(sa, sb, 120, samples=500, seed=0)
    assert 0.01 < result["ROUGE-L"].p_value < 0.99
