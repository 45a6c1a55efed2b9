"""Clinical efficacy (CE): precision / recall / F1 of the 14 CheXpert labels of generated reports.

Both the predicted and the reference reports are labelled by the same labeler (values 1 positive,
0 negative, -1 uncertain, None blank) and binarised under a named convention:

- ``ce_radialog_uncertain_negative``: RaDialog's CE (blank -> 0, uncertain -> 0), 14 labels incl.
  No Finding; "CE" in its tables is the macro F1 over all 14.
- ``ce_uncertain_positive``: uncertain counted as positive (blank -> 0, -1 -> 1), as f1chexbert does.

Metrics follow scikit-learn with its default ``zero_division`` (0): macro and micro P/R/F1 over
all 14 labels and over ``COMMON_FIVE``, example-based F1 (``average="samples"``) and mean
per-label accuracy. Everything is derived from per-report TP/FP/FN/TN counts, so a bootstrap
resample is a weighted sum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from radialog.labels import CHEXPERT_LABELS, COMMON_FIVE
from radialog.metrics.bootstrap import Statistic

# convention name -> value assigned to (uncertain, blank)
CONVENTIONS: dict[str, tuple[int, int]] = {
    "ce_radialog_uncertain_negative": (0, 0),
    "ce_uncertain_positive": (1, 0),
}
SUBSETS: dict[str, tuple[str, ...]] = {"14": CHEXPERT_LABELS, "5": COMMON_FIVE}
_SUBSET_INDEX = {k: np.array([CHEXPERT_LABELS.index(n) for n in v]) for k, v in SUBSETS.items()}


def label_matrix(rows: Sequence[Any]) -> np.ndarray:
    """(N, 14) float matrix (1/0/-1, NaN for blank) from LabelResults, label dicts or sequences.

    Dicts (or ``.labels`` dicts) are read by label name, so their order does not matter;
    sequences must be in canonical order.
    """
    out = np.full((len(rows), len(CHEXPERT_LABELS)), np.nan)
    for i, row in enumerate(rows):
        labels = getattr(row, "labels", row)
        if isinstance(labels, Mapping):
            values = [labels.get(name) for name in CHEXPERT_LABELS]
        else:
            values = list(labels)
            if len(values) != len(CHEXPERT_LABELS):
                raise ValueError(
                    f"row {i}: expected {len(CHEXPERT_LABELS)} label values, got {len(values)}"
                )
        for j, v in enumerate(values):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            if v not in (1, 0, -1):
                raise ValueError(
                    f"row {i}, {CHEXPERT_LABELS[j]}: label value {v!r} is not 1, 0, -1 or None"
                )
            out[i, j] = v
    return out


def binarize(matrix: np.ndarray, convention: str) -> np.ndarray:
    """Map a 1/0/-1/NaN matrix to 0/1 under a named convention."""
    if convention not in CONVENTIONS:
        raise ValueError(
            f"unknown CE convention {convention!r}; expected one of {', '.join(CONVENTIONS)}"
        )
    uncertain, blank = CONVENTIONS[convention]
    m = np.asarray(matrix, dtype=np.float64)
    out = np.where(np.isnan(m), blank, m)
    out = np.where(out == -1, uncertain, out)
    return out.astype(np.int64)


@dataclass
class ClinicalCounts:
    """Per-report confusion counts for one convention: arrays (N, 14) of 0/1."""

    convention: str
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    @classmethod
    def from_matrices(cls, pred: np.ndarray, ref: np.ndarray, convention: str) -> ClinicalCounts:
        p, r = binarize(pred, convention), binarize(ref, convention)
        if p.shape != r.shape:
            raise ValueError(
                f"prediction labels {p.shape} and reference labels {r.shape} differ in shape"
            )
        return cls(convention, p & r, p & (1 - r), (1 - p) & r, (1 - p) & (1 - r))

    def per_report(self) -> np.ndarray:
        """(N, 4*14) additive statistics: tp, fp, fn, tn per label."""
        return np.concatenate([self.tp, self.fp, self.fn, self.tn], axis=1).astype(np.float64)

    def sample_f1(self) -> np.ndarray:
        """Per-report F1 over the 14 labels (0 where the report and reference have no positives)."""
        tp, fp, fn = self.tp.sum(1), self.fp.sum(1), self.fn.sum(1)
        denom = 2 * tp + fp + fn
        return np.divide(2 * tp, denom, out=np.zeros(len(tp), dtype=np.float64), where=denom > 0)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def metrics_from_totals(totals: np.ndarray) -> dict[str, np.ndarray]:
    """CE metrics from summed counts; ``totals`` is (..., 4*14) -> each metric (...)."""
    t = np.asarray(totals, dtype=np.float64)
    n_lab = len(CHEXPERT_LABELS)
    tp, fp, fn, tn = (t[..., k * n_lab : (k + 1) * n_lab] for k in range(4))
    out: dict[str, np.ndarray] = {}
    for subset, idx in _SUBSET_INDEX.items():
        s_tp, s_fp, s_fn = tp[..., idx], fp[..., idx], fn[..., idx]
        out[f"precision_macro/{subset}"] = _div(s_tp, s_tp + s_fp).mean(-1)
        out[f"recall_macro/{subset}"] = _div(s_tp, s_tp + s_fn).mean(-1)
        out[f"f1_macro/{subset}"] = _div(2 * s_tp, 2 * s_tp + s_fp + s_fn).mean(-1)
        m_tp, m_fp, m_fn = s_tp.sum(-1), s_fp.sum(-1), s_fn.sum(-1)
        out[f"precision_micro/{subset}"] = _div(m_tp, m_tp + m_fp)
        out[f"recall_micro/{subset}"] = _div(m_tp, m_tp + m_fn)
        out[f"f1_micro/{subset}"] = _div(2 * m_tp, 2 * m_tp + m_fp + m_fn)
    out["accuracy_mean/14"] = _div(tp + tn, tp + fp + fn + tn).mean(-1)
    return out


def per_label_table(counts: ClinicalCounts) -> dict[str, dict[str, float]]:
    """label -> precision, recall, f1, support (reference positives), predicted (positives)."""
    tp, fp, fn = counts.tp.sum(0), counts.fp.sum(0), counts.fn.sum(0)
    prec, rec, f1 = _div(tp, tp + fp), _div(tp, tp + fn), _div(2 * tp, 2 * tp + fp + fn)
    return {
        name: {
            "precision": float(prec[j]),
            "recall": float(rec[j]),
            "f1": float(f1[j]),
            "support": int(tp[j] + fn[j]),
            "predicted": int(tp[j] + fp[j]),
        }
        for j, name in enumerate(CHEXPERT_LABELS)
    }


def clinical_statistics(pred: np.ndarray, ref: np.ndarray, convention: str) -> list[Statistic]:
    """Bootstrappable CE statistics named ``<convention>/<metric>/<14|5>``."""
    counts = ClinicalCounts.from_matrices(pred, ref, convention)
    per_report = counts.per_report()
    point = metrics_from_totals(per_report.sum(0))
    # All CE metrics of a resample batch come from one product; keep the last batch's result.
    memo: dict[str, Any] = {"counts": None, "metrics": None}

    def batch_metrics(counts: np.ndarray) -> dict[str, np.ndarray]:
        if memo["counts"] is not counts:
            memo["counts"], memo["metrics"] = counts, metrics_from_totals(counts @ per_report)
        return memo["metrics"]

    stats = []
    for key, value in point.items():
        stats.append(
            Statistic(
                f"{convention}/{key}",
                float(value),
                (lambda k: lambda c: batch_metrics(c)[k])(key),
                convention,
            )
        )
    sf1 = counts.sample_f1()
    n = len(sf1)
    stats.append(
        Statistic(
            f"{convention}/f1_samples/14", float(sf1.mean()), lambda c: c @ sf1 / n, convention
        )
    )
    return stats


def clinical_efficacy(pred: np.ndarray, ref: np.ndarray, convention: str) -> dict[str, Any]:
    """Point estimates (no bootstrap) and the per-label table for one convention."""
    counts = ClinicalCounts.from_matrices(pred, ref, convention)
    metrics = {k: float(v) for k, v in metrics_from_totals(counts.per_report().sum(0)).items()}
    metrics["f1_samples/14"] = float(counts.sample_f1().mean())
    return {"convention": convention, "metrics": metrics, "per_label": per_label_table(counts)}
