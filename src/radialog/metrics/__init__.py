"""Report metrics: NLG (BLEU, METEOR, ROUGE-L, CIDEr), BERTScore, clinical efficacy, bootstrap.

Entry points: ``score_reports(preds, refs, ...)`` and ``compare_systems(a, b, refs, ...)``.
Every metric result names its convention (preprocessing, encoder, label mapping).
"""

from radialog.metrics.suite import RADIALOG_CE, compare_systems, score_reports

__all__ = ["RADIALOG_CE", "compare_systems", "score_reports"]
