"""NLG metrics equal pycocoevalcap's on real IU X-ray text; tokenization equals nltk's."""

from __future__ import annotations

import math
import threading

import nltk
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge, my_lcs

from metrics_data import iu_reports, shuffled_pairs
from radialog.metrics.nlg import bleu_from_totals, lcs_length, nlg_statistics, tokenize_all
from radialog.metrics.tokenize import english_punkt_parameters, preprocess_report, word_tokenize


@pytest.fixture(scope="module")
def pairs():
    preds, refs = shuffled_pairs(150)
    return tokenize_all(preds), tokenize_all(refs)


@pytest.fixture(scope="module")
def meteor():
    from radialog.metrics.meteor import JavaNotFoundError, get_meteor

    try:
        return get_meteor()
    except JavaNotFoundError as exc:
        pytest.skip(str(exc))


def _coco(pairs):
    preds, refs = pairs
    return {i: [r] for i, r in enumerate(refs)}, {i: [p] for i, p in enumerate(preds)}


def test_word_tokenize_equals_nltk_with_the_same_punkt_tab(tmp_path, monkeypatch):
    # Write the packaged English model as an NLTK punkt_tab directory and let nltk load it itself.
    params = english_punkt_parameters()
    lang = tmp_path / "tokenizers" / "punkt_tab" / "english"
    lang.mkdir(parents=True)
    (lang / "abbrev_types.txt").write_text("".join(f"{a}\n" for a in sorted(params.abbrev_types)))
    (lang / "sent_starters.txt").write_text("".join(f"{a}\n" for a in sorted(params.sent_starters)))
    (lang / "collocations.tab").write_text(
        "".join(f"{a}\t{b}\n" for a, b in sorted(params.collocations))
    )
    (lang / "ortho_context.tab").write_text(
        "".join(f"{k}\t{v}\n" for k, v in sorted(params.ortho_context.items()))
    )
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    try:
        texts = iu_reports("train", limit=400) + [
            "Dr. Smith saw T12 fx. No effusion, e.g. none... Stable."
        ]
        for text in texts:
            assert word_tokenize(text) == nltk.word_tokenize(text)
    finally:
        nltk.tokenize._get_punkt_tokenizer.cache_clear()


def test_word_tokenize_splits_sentences_like_punkt():
    # Sentence-final periods become tokens; abbreviations and decimals stay whole.
    assert word_tokenize("Heart is normal. Lungs are clear.") == [
        "Heart",
        "is",
        "normal",
        ".",
        "Lungs",
        "are",
        "clear",
        ".",
    ]
    assert word_tokenize("A 1.5 cm nodule, i.e. small.") == [
        "A",
        "1.5",
        "cm",
        "nodule",
        ",",
        "i.e",
        ".",
        "small",
        ".",
    ]


def test_preprocess_matches_radialog():
    assert preprocess_report("<s>The heart\nis normal.</s>") == "the heartis normal ."


def test_bleu_rouge_cider_identical_to_pycocoevalcap(pairs):
    gts, res = _coco(pairs)
    stats = {
        s.name: s.value
        for s in nlg_statistics(*pairs, meteor=False, pretokenized=True).statistics()
    }
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert [stats[f"BLEU-{k}"] for k in range(1, 5)] == bleu
    assert stats["ROUGE-L"] == Rouge().compute_score(gts, res)[0]
    assert stats["CIDEr"] == Cider().compute_score(gts, res)[0]
    assert 0 < stats["BLEU-4"] < stats["BLEU-1"] < 1


def test_meteor_identical_to_pycocoevalcap_and_aggregation_matches_jar(pairs, meteor):
    from pycocoevalcap.meteor.meteor import Meteor

    from radialog.metrics.meteor import additive_stats, aggregate_from_stats

    preds, refs = pairs
    ours = nlg_statistics(preds[:60], refs[:60], meteor=True, pretokenized=True)

    class SharedMeteor(Meteor):
        """pycocoevalcap's own Meteor code, driving the already running jar (no second JVM)."""

        def __init__(self, proc):
            self.meteor_p, self.lock = proc, threading.Lock()

        def __del__(self):  # the process belongs to the fixture
            pass

    expected, _ = SharedMeteor(meteor._proc).compute_score(*_coco((preds[:60], refs[:60])))
    assert ours.meteor_corpus == expected
    # Our re-implementation of the jar's aggregation (used by the bootstrap) on subsets.
    lines = meteor.segment_stats(preds[:60], [[r] for r in refs[:60]])
    stats = additive_stats(lines)
    for k in (1, 7, 60):
        jar, _ = meteor.evaluate(lines[:k])
        assert math.isclose(float(aggregate_from_stats(stats[:k].sum(0))), jar, rel_tol=1e-12)


def test_meteor_identical_report_scores_high(meteor):
    text = preprocess_report("The heart is normal in size. The lungs are clear.")
    score, segments = meteor.score([text], [[text]])
    assert segments[0] > 0.95 and score == segments[0]


def test_bit_parallel_lcs_equals_pycocoevalcap(pairs):
    for p, r in zip(*pairs, strict=True):
        a, b = r.split(" "), p.split(" ")
        assert lcs_length(a, b) == my_lcs(a, b)


def test_bleu_brevity_penalty_applies_to_short_output():
    short = bleu_from_totals([5, 10, 5, 4, 3, 2, 5, 4, 3, 2])
    assert math.isclose(short[0], math.exp(1 - 10 / 5), rel_tol=1e-9)
