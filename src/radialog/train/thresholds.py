"""Multi-label classification metrics and per-label threshold tuning (classifier stage).

Macro averages are taken over the labels that can be scored on the given set: F1 over labels
with at least one positive, AUROC over labels with both classes. Each result says how many
labels it averaged (`*_labels`), so numbers from different sets are not silently compared.
"""

from __future__ import annotations

import numpy as np

from radialog.labels import CHEXPERT_LABELS


def tune_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    default: float = 0.5,
    min_positives: int = 10,
    min_f1: float = 0.3,
) -> np.ndarray:
    """Per-label threshold that maximises F1 of `prob > threshold` on (probs, targets).

    probs, targets: (N, L). A label keeps `default` when it has fewer than `min_positives`
    positives or its best F1 stays below `min_f1`: a threshold tuned on a handful of cases, or
    for a label the classifier cannot separate, drops low and floods the prompt with that
    finding. The threshold is the midpoint between the last predicted-positive score and the
    next one, so it generalises a little better than the score itself.
    """
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets) > 0.5
    n, num_labels = probs.shape
    out = np.full(num_labels, float(default))
    for j in range(num_labels):
        pos = int(targets[:, j].sum())
        if pos < max(1, min_positives) or n == 0:
            continue
        order = np.argsort(-probs[:, j], kind="stable")
        scores = probs[order, j]
        tp = np.cumsum(targets[order, j])
        k = np.arange(1, n + 1)  # predicted positives when cutting after position k-1
        f1 = 2 * tp / (k + pos)
        # A cut is only realisable where the next score is strictly lower (ties move together).
        valid = np.append(scores[:-1] > scores[1:], True)
        f1 = np.where(valid, f1, -1.0)
        best = int(np.argmax(f1))
        if f1[best] < min_f1:
            continue
        nxt = scores[best + 1] if best + 1 < n else scores[best] - 1e-6
        out[j] = float((scores[best] + nxt) / 2)
    return out


def classification_metrics(
    probs: np.ndarray,
    targets: np.ndarray,
    thresholds: np.ndarray | float = 0.5,
    names: tuple[str, ...] = CHEXPERT_LABELS,
) -> dict[str, float]:
    """Macro/micro F1, macro AUROC and per-label F1/AUROC of `prob > threshold`."""
    from sklearn.metrics import roc_auc_score

    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(targets) > 0.5
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (probs.shape[1],))
    pred = probs > thr
    tp = (pred & y).sum(0)
    fp = (pred & ~y).sum(0)
    fn = (~pred & y).sum(0)
    has_pos = y.sum(0) > 0
    f1 = np.where(has_pos, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
    out: dict[str, float] = {}
    aucs = np.full(probs.shape[1], np.nan)
    for j in range(probs.shape[1]):
        if 0 < y[:, j].sum() < len(y):
            aucs[j] = roc_auc_score(y[:, j], probs[:, j])
    out["macro_f1"] = float(np.nanmean(f1)) if has_pos.any() else float("nan")
    out["macro_f1_labels"] = float(has_pos.sum())
    out["micro_f1"] = float(2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1))
    out["macro_auroc"] = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")
    out["macro_auroc_labels"] = float(np.isfinite(aucs).sum())
    for j, name in enumerate(names[: probs.shape[1]]):
        key = name.lower().replace(" ", "_")
        if np.isfinite(f1[j]):
            out[f"f1/{key}"] = float(f1[j])
        if np.isfinite(aucs[j]):
            out[f"auroc/{key}"] = float(aucs[j])
    return out
