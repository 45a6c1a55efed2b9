"""Metrics of an eval run, from its prediction records: every value with a CI and its convention.

Report metrics come from `radialog.metrics.score_reports`; QA and view metrics are built on the
same bootstrap machinery (`radialog.metrics.bootstrap`), so every number in metrics.json has the
shape `{"value", "ci_low", "ci_high", "convention"}`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from radialog.evaluation.items import EvalItem
from radialog.evaluation.parsing import parse_binary_answers, parse_list_answer, parse_view
from radialog.evaluation.store import PredictionStore
from radialog.labels import CHEXPERT_LABELS
from radialog.metrics import RADIALOG_CE, score_reports
from radialog.metrics.bootstrap import (
    Statistic,
    finite_or_none,
    mean_statistic,
    paired_bootstrap,
    reported_metrics,
)
from radialog.metrics.clinical import (
    ClinicalCounts,
    clinical_statistics,
    label_matrix,
    per_label_table,
)

log = logging.getLogger(__name__)

CE_CONVENTION = "ce_radialog_uncertain_negative"
# QA metric name -> key of radialog.metrics.clinical statistics (14 labels incl. No Finding).
QA_KEYS = {
    "macro_f1": f"{CE_CONVENTION}/f1_macro/14",
    "macro_precision": f"{CE_CONVENTION}/precision_macro/14",
    "macro_recall": f"{CE_CONVENTION}/recall_macro/14",
    "accuracy": f"{CE_CONVENTION}/accuracy_mean/14",
    "micro_f1": f"{CE_CONVENTION}/f1_micro/14",
}


def score_texts(
    preds: Sequence[str],
    refs: Sequence[str],
    options: Any,
    *,
    labeler: Any,
    bertscore: bool,
    pred_labels: Sequence[Any] | None = None,
    ref_labels: Sequence[Any] | None = None,
) -> dict[str, Any]:
    bs: bool | str = bertscore and (options.bertscore_model or True)
    return score_reports(
        preds,
        refs,
        labeler=labeler,
        bertscore=bs,
        bootstrap=options.n_bootstrap,
        seed=options.seed,
        progress=False,
        meteor=options.meteor,
        pred_labels=pred_labels,
        ref_labels=ref_labels,
    )


def _per_label_f1(scored: Mapping[str, Any]) -> dict[str, float]:
    table = scored["per_label"][CE_CONVENTION]
    return {name: table[name]["f1"] for name in CHEXPERT_LABELS}


def score_run(
    store: PredictionStore,
    items: Sequence[EvalItem],
    tasks: Sequence[str],
    run: dict[str, Any],
    labeler: Any,
    pred_labels: Mapping[str, dict],
    ref_labels: Mapping[str, dict],
    options: Any,
) -> dict[str, Any]:
    """metrics.json's content for the finished predictions of `items`."""
    out: dict[str, Any] = {"schema": 1, "run": run, "tasks": {}, "conventions": {}}
    refs = [it.findings for it in items]
    ref_rows = [ref_labels[it.id] for it in items]
    ref_matrix = label_matrix(ref_rows)
    rg_texts = [store.get(f"rg/{it.id}")["output"] for it in items]
    rg_rows = [pred_labels[it.id] for it in items]

    scored = score_texts(
        rg_texts,
        refs,
        options,
        labeler=labeler,
        bertscore=options.bertscore,
        pred_labels=rg_rows,
        ref_labels=ref_rows,
    )
    out["tasks"]["rg"] = {
        "n": scored["n"],
        "metrics": scored["metrics"],
        "per_label_f1": _per_label_f1(scored),
        "per_label": scored["per_label"],
    }
    out["conventions"].update(_conventions(run, scored, options))
    classifier = classifier_metrics(store, items, ref_matrix, options)
    if classifier:
        out["tasks"]["rg"]["classifier"] = classifier

    if "correction" in tasks:
        out["tasks"]["correction"] = _score_correction(
            store, items, labeler, scored, rg_rows, ref_rows, refs, options
        )
    ids = [it.id for it in items]
    for task, parse in (("binary_qa", binary_rows), ("all_qa", list_rows)):
        if task in tasks:
            rows = parse(store, ids)
            out["tasks"][task] = _score_label_task(
                np.array(rows, dtype=np.float64), ref_matrix, task, options
            )
    if "impression" in tasks:
        recs = [store.get(f"impression/{it.id}") for it in items if it.impression]
        if recs:
            imp = score_texts(
                [r["output"] for r in recs],
                [r["reference"] for r in recs],
                options,
                labeler=False,
                bertscore=False,
            )
            out["tasks"]["impression"] = {"n": imp["n"], "metrics": imp["metrics"]}
        else:
            log.warning("impression: no item has both a findings and an impression section")
            out["tasks"]["impression"] = {"n": 0, "metrics": {}}
    if "view" in tasks:
        recs = [store.get(f"view/{it.id}") for it in items if it.view]
        out["tasks"]["view"] = score_views(
            [r["reference"] for r in recs],
            [parse_view(r["output"]) for r in recs],
            options.n_bootstrap,
            options.seed,
        )
    return out


def _conventions(run: Mapping[str, Any], scored: Mapping[str, Any], options: Any) -> dict[str, str]:
    bs = scored.get("bertscore")
    mnt = run["max_new_tokens"]
    return {
        "items": (
            f"{run['n_items']} items of {run['dataset']} ({run['split']}); "
            + (
                "every image of each study counts"
                if run["images"] == "all"
                else "one frontal image per study"
            )
            + "; studies without a findings section are excluded"
        ),
        "reference": "the findings section (whitespace collapsed), as RaDialog",
        "prompt": (
            "RaDialog's report prompt with the findings classifier's predictions (No-Finding rule applied)"
            if run["use_findings"]
            else "ablation --no-findings: image-only prompt (the 'Predicted Findings' sentence removed)"
        ),
        "generation": "greedy; max_new_tokens " + ", ".join(f"{k} {v}" for k, v in mnt.items()),
        "CE": (
            f"macro F1 over the 14 CheXpert labels incl. No Finding ({RADIALOG_CE}): labeler "
            f"'{scored.get('labeler')}' on prediction and "
            + (
                "reference text"
                if run["reference_labels"] == "text"
                else "dataset labels for the reference"
            )
            + "; uncertain and blank count as negative"
        ),
        "BS": (
            "not computed"
            if not bs
            else f"BERTScore F1 (encoder {bs['encoder']}, layer {bs['layer']}, "
            f"{'baseline-rescaled' if bs['rescaled'] else 'raw cosine, not rescaled'}); "
            "RaDialog used distilroberta-base rescaled"
        ),
        "NLG": "pycocoevalcap BLEU-1..4 (corpus), METEOR 1.5, ROUGE-L; RaDialog preprocessing (nltk tokens, lower case)"
        + ("" if options.meteor else "; METEOR skipped (--no-meteor)"),
        "bootstrap": f"{options.n_bootstrap} resamples of the items, percentile 95% CI, seed {options.seed}",
        "correction": "requests built from the labeler's FP/FN of the generated report vs the reference "
        "(No Finding excluded); KEEP_OLD keeps the report; CE before = report generation",
        "binary_qa": "' Is there any {Label}?' after the generated report; positive iff the answer contains "
        "'yes'; No Finding := 1 - any(other 13); scored against the reference labels",
        "all_qa": "'List all the findings in this report.'; a label is predicted iff its lower-cased name "
        "is a substring of the answer",
        "impression": "GT findings as the assistant turn, then the impression request; items with both sections",
        "view": "'<image> From what view was this image taken?'; answer parsed by ' ap ', ' pa ', ' lateral ', "
        "' ll ' (punctuation as spaces), else 'unknown'; accuracy and macro F1 over the classes present",
    }


def _score_correction(
    store: PredictionStore,
    items: Sequence[EvalItem],
    labeler: Any,
    before: Mapping[str, Any],
    before_rows: Sequence[dict],
    ref_rows: Sequence[dict],
    refs: Sequence[str],
    options: Any,
) -> dict[str, Any]:
    recs = [store.get(f"correction/{it.id}") for it in items]
    texts = [r["output"] for r in recs]
    after_rows = [r.labels for r in labeler.label(texts)]
    after = score_texts(
        texts,
        refs,
        options,
        labeler=labeler,
        bertscore=options.bertscore,
        pred_labels=after_rows,
        ref_labels=ref_rows,
    )
    # Paired test of the CE change on the same resamples (after - before).
    ref_m = label_matrix(list(ref_rows))
    stats_after = {
        s.name: s for s in clinical_statistics(label_matrix(after_rows), ref_m, CE_CONVENTION)
    }
    stats_before = {
        s.name: s
        for s in clinical_statistics(label_matrix(list(before_rows)), ref_m, CE_CONVENTION)
    }
    delta = {}
    if options.n_bootstrap > 0:
        paired = paired_bootstrap(
            {RADIALOG_CE: stats_after[RADIALOG_CE]},
            {RADIALOG_CE: stats_before[RADIALOG_CE]},
            len(items),
            options.n_bootstrap,
            options.seed,
        )
        r = paired[RADIALOG_CE]
        delta = {
            "value": finite_or_none(r.delta),
            "ci_low": finite_or_none(r.ci_low),
            "ci_high": finite_or_none(r.ci_high),
            "p_value": finite_or_none(r.p_value),
            "convention": "CE after - CE before, paired bootstrap",
        }
    return {
        "n": len(items),
        "n_keep_old": sum(r["prompt"] == "KEEP_OLD" for r in recs),
        "before": {"metrics": before["metrics"], "per_label_f1": _per_label_f1(before)},
        "after": {"metrics": after["metrics"], "per_label_f1": _per_label_f1(after)},
        "delta_ce": delta,
    }


def classifier_metrics(
    store: PredictionStore, items: Sequence[EvalItem], ref_matrix: np.ndarray, options: Any
) -> dict[str, Any] | None:
    """The findings classifier against the reference labels, from the RG records' probabilities
    and thresholded findings: macro AUROC (no CI) and macro F1 over 14 labels with a CI.
    None when the records carry no probabilities (a model-free baseline)."""
    recs = [store.get(f"rg/{it.id}") for it in items]
    if not recs or not all(r.get("probabilities") for r in recs):
        return None
    probs = np.array([[r["probabilities"].get(n, 0.0) for n in CHEXPERT_LABELS] for r in recs])
    pred = np.array(
        [[float(n in r.get("predicted_findings", [])) for n in CHEXPERT_LABELS] for r in recs]
    )
    stats = [
        s
        for s in clinical_statistics(pred, ref_matrix, CE_CONVENTION)
        if s.name == QA_KEYS["macro_f1"]
    ]
    entries = reported_metrics(stats, len(pred), options.n_bootstrap, options.seed)
    return {
        "macro_auroc": {
            "value": _macro_auc(probs, ref_matrix),
            "ci_low": None,
            "ci_high": None,
            "convention": "mean ROC AUC of the classifier probabilities over labels with both "
            "classes in the reference (no CI)",
        },
        "macro_f1": {
            **entries[QA_KEYS["macro_f1"]],
            "convention": "macro F1 over 14 labels of the thresholded findings (No-Finding rule "
            "applied) against the reference labels; uncertain counts as negative",
        },
    }


def binary_rows(records: Any, ids: Sequence[str]) -> list[list[int]]:
    """Parsed binary-QA labels per id; `records` is a store or a dict key -> record."""
    rows = []
    for id_ in ids:
        answers = {
            name: records.get(f"binary_qa/{id_}/{name}")["output"] for name in CHEXPERT_LABELS
        }
        parsed = parse_binary_answers(answers)
        rows.append([parsed[name] for name in CHEXPERT_LABELS])
    return rows


def list_rows(records: Any, ids: Sequence[str]) -> list[list[int]]:
    """Parsed list-all-QA labels per id; `records` is a store or a dict key -> record."""
    rows = []
    for id_ in ids:
        parsed = parse_list_answer(records.get(f"all_qa/{id_}")["output"])
        rows.append([parsed[name] for name in CHEXPERT_LABELS])
    return rows


def _score_label_task(pred: np.ndarray, ref: np.ndarray, task: str, options: Any) -> dict[str, Any]:
    """Macro F1 / P / R, accuracy and macro AUC of parsed answers against the reference labels."""
    stats = [s for s in clinical_statistics(pred, ref, CE_CONVENTION) if s.name in QA_KEYS.values()]
    entries = reported_metrics(stats, len(pred), options.n_bootstrap, options.seed)
    metrics = {name: entries[key] for name, key in QA_KEYS.items()}
    metrics["macro_auc"] = {
        "value": _macro_auc(pred, ref),
        "ci_low": None,
        "ci_high": None,
        "convention": "mean ROC AUC of the binary answers over labels with both classes "
        "in the reference (no CI)",
    }
    table = per_label_table(ClinicalCounts.from_matrices(pred, ref, CE_CONVENTION))
    return {
        "n": len(pred),
        "metrics": metrics,
        "per_label_f1": {name: table[name]["f1"] for name in CHEXPERT_LABELS},
        "per_label": table,
    }


def _macro_auc(pred: np.ndarray, ref: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    ref01 = np.where(ref == 1, 1, 0)
    scores = [
        roc_auc_score(ref01[:, j], pred[:, j])
        for j in range(ref01.shape[1])
        if 0 < ref01[:, j].sum() < len(ref01)
    ]
    return float(np.mean(scores)) if scores else None


def view_statistics(true: Sequence[str], pred: Sequence[str]) -> list[Statistic]:
    """Accuracy and macro F1 (sklearn's default classes: union of true and predicted) as statistics."""
    classes = sorted(set(true) | set(pred))
    t = np.array([[c == x for c in classes] for x in true], dtype=np.float64).reshape(
        len(true), len(classes)
    )
    p = np.array([[c == x for c in classes] for x in pred], dtype=np.float64).reshape(
        len(pred), len(classes)
    )
    per_item = np.concatenate([t * p, p * (1 - t), t * (1 - p)], axis=1)  # tp, fp, fn per class
    k = len(classes)

    def macro_f1(counts: np.ndarray) -> np.ndarray:
        tot = counts @ per_item
        tp, fp, fn = tot[..., :k], tot[..., k : 2 * k], tot[..., 2 * k :]
        den = 2 * tp + fp + fn
        return np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0).mean(-1)

    correct = (t * p).sum(1)
    conv = "views AP/PA/LATERAL/LL (+ unknown answers); sklearn macro F1 over the classes present"
    return [
        mean_statistic(
            "accuracy", correct, "share of items whose parsed view equals the reference"
        ),
        Statistic("macro_f1", float(macro_f1(np.ones((1, len(true))))[0]), macro_f1, conv),
    ]


def score_views(
    true: Sequence[str], pred: Sequence[str], samples: int, seed: int
) -> dict[str, Any]:
    if not true:
        log.warning("view: no item has a known view (AP/PA/LATERAL/LL)")
        return {"n": 0, "metrics": {}, "confusion": {}}
    metrics = reported_metrics(view_statistics(true, pred), len(true), samples, seed)
    confusion: dict[str, dict[str, int]] = {}
    for t, p in zip(true, pred, strict=True):
        confusion.setdefault(t, {}).setdefault(p, 0)
        confusion[t][p] += 1
    return {
        "n": len(true),
        "n_unknown": sum(p == "unknown" for p in pred),
        "metrics": metrics,
        "confusion": confusion,
    }
