"""Score predicted reports against references: every metric, with bootstrap CIs and conventions.

Metric keys in the result:

- ``bleu_1`` .. ``bleu_4``, ``meteor``, ``rouge_l``, ``cider`` (pycocoevalcap numbers, RaDialog
  preprocessing);
- ``bertscore_f1``, ``bertscore_precision``, ``bertscore_recall`` (encoder and layer named);
- ``<convention>/<metric>/<14|5>`` for clinical efficacy, e.g.
  ``ce_radialog_uncertain_negative/f1_macro/14`` (= RaDialog's "CE"), ``.../f1_micro/5``,
  ``.../f1_samples/14``; conventions in ``clinical.CONVENTIONS``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from radialog.metrics.bootstrap import (
    Statistic,
    confidence_intervals,
    finite_or_none,
    mean_statistic,
    metric_entries,
    paired_bootstrap,
)
from radialog.metrics.clinical import (
    CONVENTIONS,
    ClinicalCounts,
    clinical_statistics,
    label_matrix,
    per_label_table,
)
from radialog.metrics.nlg import nlg_statistics, tokenize_all

log = logging.getLogger(__name__)

RADIALOG_CE = "ce_radialog_uncertain_negative/f1_macro/14"
ProgressArg = bool | Callable[[str, int], None]
_NLG_KEYS = {"BLEU-1": "bleu_1", "BLEU-2": "bleu_2", "BLEU-3": "bleu_3", "BLEU-4": "bleu_4"}
_NLG_KEYS |= {"METEOR": "meteor", "ROUGE-L": "rouge_l", "CIDEr": "cider"}


class _Progress:
    """Progress reporting: tqdm bars (progress=True), a callback(task, n), or nothing."""

    def __init__(self, progress: ProgressArg) -> None:
        self._callback = progress if callable(progress) else None
        self._bars = progress is True

    @contextmanager
    def stage(self, name: str, total: int | None):
        if self._callback is not None:
            callback = self._callback
            yield lambda n: callback(name, n)
        elif self._bars:
            from tqdm.auto import tqdm

            with tqdm(total=total, desc=name, unit="it", leave=False) as bar:
                yield bar.update
        else:
            yield lambda n: None


def _label(
    labeler: Any, texts: Sequence[str], step: Callable[[int], None], chunk: int = 256
) -> np.ndarray:
    # Each distinct text is labelled once: generated reports repeat verbatim a lot.
    unique = list(dict.fromkeys(texts))
    results = []
    for start in range(0, len(unique), chunk):
        part = unique[start : start + chunk]
        results.extend(labeler.label(part))
        step(len(part))
    index = {text: i for i, text in enumerate(unique)}
    return label_matrix(results)[[index[t] for t in texts]]


class _Collector:
    """Computes every metric's bootstrappable statistics for one or more systems on shared refs."""

    def __init__(
        self,
        refs: Sequence[str],
        *,
        labeler: Any,
        bertscore: bool | str,
        bertscore_layer: int | None,
        meteor: bool,
        ref_labels: Any,
        progress: _Progress,
    ) -> None:
        self.refs = list(refs)
        self.progress = progress
        self.meteor = meteor
        self.bertscore = bertscore
        self.bertscore_layer = bertscore_layer
        self.timings: dict[str, float] = {}
        self.info: dict[str, Any] = {"labeler": None, "bertscore": None}
        if meteor:
            from radialog.metrics.meteor import get_meteor

            get_meteor()  # the JVM loads its tables while we tokenize and label
        t = time.perf_counter()
        self.ref_tok = tokenize_all(self.refs)
        self._time("tokenize", t)
        self.labeler = None
        self.ref_matrix = None
        if labeler is not False or ref_labels is not None:
            if ref_labels is not None:
                self.ref_matrix = label_matrix(list(ref_labels))
            if labeler is not False:
                from radialog.labeler import get_labeler

                self.labeler = get_labeler(labeler)
                self.info["labeler"] = getattr(self.labeler, "name", type(self.labeler).__name__)
            if self.ref_matrix is None and self.labeler is not None:
                t = time.perf_counter()
                with self.progress.stage("labeling references", len(self.refs)) as step:
                    self.ref_matrix = _label(self.labeler, self.refs, step)
                self._time("labeling", t)

    def _time(self, stage: str, start: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def collect(
        self, preds: Sequence[str], pred_labels: Any = None
    ) -> tuple[dict[str, Statistic], dict[str, Any]]:
        preds = list(preds)
        if len(preds) != len(self.refs):
            raise ValueError(f"{len(preds)} predictions but {len(self.refs)} references")
        stats: dict[str, Statistic] = {}
        t = time.perf_counter()
        pred_tok = tokenize_all(preds)
        self._time("tokenize", t)
        with self.progress.stage("METEOR (java)", len(preds) if self.meteor else 0) as step:
            nlg = nlg_statistics(
                pred_tok,
                self.ref_tok,
                meteor=self.meteor,
                pretokenized=True,
                on_meteor_progress=step,
            )
        for stage, seconds in nlg.timings.items():
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        for s in nlg.statistics():
            key = _NLG_KEYS[s.name]
            stats[key] = Statistic(key, s.value, s.resample, s.convention)
        extras: dict[str, Any] = {"per_label": {}}
        if self.bertscore:
            from radialog.metrics.bertscore import bert_score

            t = time.perf_counter()
            model = None if self.bertscore is True else self.bertscore
            bs = bert_score(preds, self.refs, model=model, layer=self.bertscore_layer)
            self._time("bertscore", t)
            self.info["bertscore"] = {
                "encoder": bs.encoder,
                "layer": bs.layer,
                "rescaled": bs.rescaled,
            }
            for part, values in (("f1", bs.f1), ("precision", bs.precision), ("recall", bs.recall)):
                key = f"bertscore_{part}"
                stats[key] = mean_statistic(key, values, bs.convention.replace("F1", part))
        pred_matrix = None
        if pred_labels is not None:
            pred_matrix = label_matrix(list(pred_labels))
        elif self.labeler is not None and self.ref_matrix is not None:
            t = time.perf_counter()
            with self.progress.stage("labeling predictions", len(preds)) as step:
                pred_matrix = _label(self.labeler, preds, step)
            self._time("labeling", t)
        if pred_matrix is not None and self.ref_matrix is not None:
            for convention in CONVENTIONS:
                for s in clinical_statistics(pred_matrix, self.ref_matrix, convention):
                    stats[s.name] = s
                counts = ClinicalCounts.from_matrices(pred_matrix, self.ref_matrix, convention)
                extras["per_label"][convention] = per_label_table(counts)
        return stats, extras


def score_reports(
    preds: Sequence[str],
    refs: Sequence[str],
    *,
    labeler: Any = None,
    bertscore: bool | str = True,
    bootstrap: int = 1000,
    seed: int = 0,
    progress: ProgressArg = True,
    meteor: bool = True,
    bertscore_layer: int | None = None,
    pred_labels: Sequence[Any] | None = None,
    ref_labels: Sequence[Any] | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Score ``preds[i]`` against ``refs[i]`` with every metric; JSON-serialisable result.

    - ``labeler``: None = the rule labeler, a name/path for ``get_labeler``, an object with
      ``.label(texts)``, or False to skip clinical efficacy. ``pred_labels``/``ref_labels``
      (LabelResults, label dicts or 14-value rows) replace labelling that side.
    - ``bertscore``: True = bundled all-MiniLM-L6-v2, a local model directory, or False.
    - ``bootstrap``: resamples for the CIs (0 = none); ``progress``: tqdm bars, a
      ``callback(task, n)``, or False.

    Returns ``{"n", "metrics": {key: {"value", "ci_low", "ci_high", "convention"}},
    "per_label": {convention: {label: {precision, recall, f1, support, predicted}}},
    "labeler", "bertscore": {encoder, layer, rescaled}, "bootstrap", "timings_s"}``.
    Undefined values (e.g. NaN) are None.
    """
    prog = _Progress(progress)
    collector = _Collector(
        refs,
        labeler=labeler,
        bertscore=bertscore,
        bertscore_layer=bertscore_layer,
        meteor=meteor,
        ref_labels=ref_labels,
        progress=prog,
    )
    stats, extras = collector.collect(preds, pred_labels)
    cis: dict[str, tuple[float, float]] = {}
    if bootstrap > 0:
        t = time.perf_counter()
        with prog.stage("bootstrap", bootstrap) as step:
            cis = confidence_intervals(
                stats.values(), len(preds), bootstrap, seed, level, on_progress=step
            )
        collector._time("bootstrap", t)
    metrics = metric_entries(stats.values(), cis)
    return {
        "n": len(preds),
        "metrics": metrics,
        "per_label": extras["per_label"],
        **_provenance(collector, bootstrap, seed, level, "percentile; resampling reports"),
    }


def compare_systems(
    preds_a: Sequence[str],
    preds_b: Sequence[str],
    refs: Sequence[str],
    *,
    labeler: Any = None,
    bertscore: bool | str = True,
    bootstrap: int = 1000,
    seed: int = 0,
    progress: ProgressArg = True,
    meteor: bool = True,
    bertscore_layer: int | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Paired bootstrap test that system A beats system B on each metric (same references).

    Returns ``{"n", "metrics": {key: {"a", "b", "delta", "ci_low", "ci_high", "p_value",
    "convention"}}, ...}`` where the CI is of A - B and ``p_value`` is the one-sided share of
    resamples in which A is not better than B.
    """
    if bootstrap <= 0:
        raise ValueError("compare_systems needs bootstrap > 0 resamples")
    prog = _Progress(progress)
    collector = _Collector(
        refs,
        labeler=labeler,
        bertscore=bertscore,
        bertscore_layer=bertscore_layer,
        meteor=meteor,
        ref_labels=None,
        progress=prog,
    )
    stats_a, _ = collector.collect(preds_a)
    stats_b, _ = collector.collect(preds_b)
    t = time.perf_counter()
    with prog.stage("paired bootstrap", 2 * bootstrap) as step:
        paired = paired_bootstrap(
            stats_a, stats_b, len(refs), bootstrap, seed, level, on_progress=step
        )
    collector._time("bootstrap", t)
    return {
        "n": len(refs),
        "metrics": {
            key: {
                "a": finite_or_none(r.a),
                "b": finite_or_none(r.b),
                "delta": finite_or_none(r.delta),
                "ci_low": finite_or_none(r.ci_low),
                "ci_high": finite_or_none(r.ci_high),
                "p_value": finite_or_none(r.p_value),
                "convention": stats_a[key].convention,
            }
            for key, r in paired.items()
        },
        **_provenance(collector, bootstrap, seed, level, "paired; percentile"),
    }


def _provenance(
    collector: _Collector, bootstrap: int, seed: int, level: float, method: str
) -> dict[str, Any]:
    """How a result was computed: labeler, BERTScore encoder, bootstrap settings, timings."""
    return {
        "labeler": collector.info["labeler"],
        "bertscore": collector.info["bertscore"],
        "bootstrap": {"samples": bootstrap, "seed": seed, "level": level, "method": method},
        "timings_s": {k: round(v, 3) for k, v in collector.timings.items()},
    }
