"""NLG metrics as RaDialog reports them: BLEU-1..4, METEOR, ROUGE-L (pycocoevalcap 1.2), CIDEr.

Numbers equal pycocoevalcap's scorers run on RaDialog's preprocessed text (see ``tokenize``):

- BLEU: corpus BLEU with pycocoevalcap's "closest" reference length and its smoothing constants;
  per-report n-gram statistics come from pycocoevalcap's own ``cook_refs``/``cook_test``, and the
  corpus formula is replayed on their sums, so a bootstrap resample is a weighted sum.
- METEOR: the pycocoevalcap jar through one shared Java process (``meteor.py``); the corpus score
  is the jar's own; resamples use the jar's aggregation formula on summed statistics.
- ROUGE-L: pycocoevalcap's per-report F (beta=1.2) averaged; the LCS length is computed with a
  bit-parallel algorithm (same length as pycocoevalcap's O(n*m) table, much faster).
- CIDEr: pycocoevalcap's ``CiderScorer`` (not CIDEr-D). Its document frequencies come from the
  references of the whole set; for the bootstrap they are held fixed at the full-set values
  (re-estimating IDF per resample would mostly measure IDF noise), so a resample is a mean of
  per-report scores.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test
from pycocoevalcap.cider.cider_scorer import CiderScorer

from radialog.metrics.bootstrap import Statistic, mean_statistic
from radialog.metrics.tokenize import preprocess_report

log = logging.getLogger(__name__)

BLEU_N = 4
ROUGE_BETA = 1.2
NLG_CONVENTION = "pycocoevalcap-1.2; radialog preprocessing (nltk word_tokenize, lower-case)"


@dataclass
class NlgStatistics:
    """Per-report sufficient statistics for the NLG metrics of one system."""

    bleu: np.ndarray  # (N, 2 + 2*BLEU_N): testlen, reflen, guess_1..4, correct_1..4
    rouge_l: np.ndarray  # (N,)
    cider: np.ndarray  # (N,) with document frequencies from all references
    meteor: np.ndarray | None  # (N, 23) additive METEOR statistics
    meteor_corpus: float | None  # the jar's corpus score
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def statistics(self) -> list[Statistic]:
        bleu_totals = self.bleu.sum(axis=0)
        point = bleu_from_totals(bleu_totals)
        stats = []
        for k in range(BLEU_N):
            stats.append(
                Statistic(
                    f"BLEU-{k + 1}",
                    point[k],
                    _bleu_resampler(self.bleu, k),
                    "corpus BLEU, closest reference length; " + NLG_CONVENTION,
                )
            )
        if self.meteor is not None and self.meteor_corpus is not None:
            from radialog.metrics.meteor import aggregate_from_stats

            meteor = self.meteor
            stats.append(
                Statistic(
                    "METEOR",
                    self.meteor_corpus,
                    lambda counts: aggregate_from_stats(counts @ meteor),
                    "METEOR 1.5 corpus score (-l en -norm); " + NLG_CONVENTION,
                )
            )
        stats.append(
            mean_statistic(
                "ROUGE-L",
                self.rouge_l,
                "ROUGE-L F (beta 1.2), mean over reports; " + NLG_CONVENTION,
            )
        )
        stats.append(
            mean_statistic(
                "CIDEr",
                self.cider,
                "CIDEr (not -D), IDF from all references, held fixed in the bootstrap; "
                + NLG_CONVENTION,
            )
        )
        return stats


def bleu_from_totals(totals: Sequence[float]) -> list[float]:
    """pycocoevalcap's corpus BLEU-1..4 from summed statistics (same float operations)."""
    small, tiny = 1e-9, 1e-15
    testlen, reflen = float(totals[0]), float(totals[1])
    guess = totals[2 : 2 + BLEU_N]
    correct = totals[2 + BLEU_N : 2 + 2 * BLEU_N]
    bleus = []
    bleu = 1.0
    for k in range(BLEU_N):
        bleu *= float(correct[k] + tiny) / (guess[k] + small)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (testlen + tiny) / (reflen + small)
    if ratio < 1:
        for k in range(BLEU_N):
            bleus[k] *= math.exp(1 - 1 / ratio)
    return [float(b) for b in bleus]


def _bleu_resampler(per_report: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    def resample(counts: np.ndarray) -> np.ndarray:
        totals = counts @ per_report
        return np.array([bleu_from_totals(row)[k] for row in totals])

    return resample


def bleu_statistics(pred: str, ref: str) -> list[int]:
    """testlen, reflen, guess_1..4, correct_1..4 for one (tokenized) pair, via pycocoevalcap."""
    cooked = cook_test(pred, cook_refs([ref], n=BLEU_N), n=BLEU_N)
    return [cooked["testlen"], cooked["reflen"][0], *cooked["guess"], *cooked["correct"]]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (bit-parallel, Allison-Dix/Hyyrö)."""
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(pred: str, ref: str) -> float:
    """pycocoevalcap's ROUGE-L for one tokenized pair (tokens split on single spaces, as there)."""
    tc, tr = pred.split(" "), ref.split(" ")
    lcs = lcs_length(tr, tc)
    prec = lcs / float(len(tc))
    rec = lcs / float(len(tr))
    if prec != 0 and rec != 0:
        return ((1 + ROUGE_BETA**2) * prec * rec) / float(rec + ROUGE_BETA**2 * prec)
    return 0.0


def cider_scores(preds: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    scorer = CiderScorer(n=4, sigma=6.0)
    for p, r in zip(preds, refs, strict=True):
        scorer += (p, [r])
    _, scores = scorer.compute_score()
    return np.asarray(scores, dtype=np.float64)


def tokenize_all(texts: Sequence[str]) -> list[str]:
    """Preprocess texts, tokenizing each distinct text once."""
    cache: dict[str, str] = {}
    out = []
    for t in texts:
        tok = cache.get(t)
        if tok is None:
            tok = cache[t] = preprocess_report(t)
        out.append(tok)
    return out


def nlg_statistics(
    preds: Sequence[str],
    refs: Sequence[str],
    *,
    meteor: bool = True,
    pretokenized: bool = False,
    on_meteor_progress: Callable[[int], None] | None = None,
) -> NlgStatistics:
    """Per-report statistics for BLEU, METEOR, ROUGE-L and CIDEr of predictions vs references."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    if not preds:
        raise ValueError("no reports to score")
    p_tok = list(preds) if pretokenized else tokenize_all(preds)
    r_tok = list(refs) if pretokenized else tokenize_all(refs)
    t0 = time.perf_counter()
    bleu = np.array(
        [bleu_statistics(p, r) for p, r in zip(p_tok, r_tok, strict=True)], dtype=np.float64
    )
    rouge = np.array([rouge_l(p, r) for p, r in zip(p_tok, r_tok, strict=True)], dtype=np.float64)
    cider = cider_scores(p_tok, r_tok)
    timings = {"bleu, rouge, cider": time.perf_counter() - t0}
    meteor_stats = meteor_corpus = None
    if meteor:
        t0 = time.perf_counter()
        from radialog.metrics.meteor import additive_stats, get_meteor

        proc = get_meteor()
        lines = proc.segment_stats(p_tok, [[r] for r in r_tok], on_progress=on_meteor_progress)
        meteor_corpus, _ = proc.evaluate(lines)
        meteor_stats = additive_stats(lines)
        timings["meteor (java)"] = time.perf_counter() - t0
    return NlgStatistics(bleu, rouge, cider, meteor_stats, meteor_corpus, timings)
