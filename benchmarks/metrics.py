"""Benchmark: score 4,000 report pairs with every metric except BERTScore, with 1,000 bootstrap CIs.

Pairs are built at run time from real IU X-ray report text (../shared/data/iu/r2gen_annotation.json,
never copied): refs = reports (cycled to reach N), preds = another report with one sentence
dropped. The naive baseline, in the same process, is pycocoevalcap called plainly (its Meteor
starts its own JVM and does one round trip per report) and a bootstrap that recomputes the
corpus metrics on each resample (timed on a few resamples, extrapolated to 1,000).

    .venv/bin/python benchmarks/metrics.py [--n 4000] [--bootstrap 1000] [--data PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "iu" / "r2gen_annotation.json"
)


def build_pairs(path: Path, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    data = json.loads(path.read_text())
    reports = [r["report"] for split in data.values() for r in split if r["report"].strip()]
    rng = np.random.default_rng(seed)
    refs = [reports[i % len(reports)] for i in range(n)]
    preds = []
    for i in rng.integers(0, len(reports), size=n):
        sentences = [s for s in reports[i].split(". ") if s]
        if len(sentences) > 1:
            sentences.pop(int(rng.integers(len(sentences))))
        preds.append(". ".join(sentences))
    return preds, refs


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def naive(preds: list[str], refs: list[str], boot_probe: int) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    from radialog.metrics.tokenize import _sentence_tokenizer, _treebank

    def plain_preprocess(text: str) -> str:  # nltk.word_tokenize as RaDialog calls it, no caching
        text = text.replace("\n", "").replace("<s>", "").replace("</s>", "")
        sents = _sentence_tokenizer().tokenize(text)
        return " ".join(tok for s in sents for tok in _treebank.tokenize(s)).lower()

    times = {}
    (p_tok, r_tok), times["tokenize"] = timed(
        lambda: ([plain_preprocess(t) for t in preds], [plain_preprocess(t) for t in refs])
    )
    gts = {i: [r] for i, r in enumerate(r_tok)}
    res = {i: [p] for i, p in enumerate(p_tok)}

    def nlg():
        Bleu(4).compute_score(gts, res, verbose=0)
        Rouge().compute_score(gts, res)
        Cider().compute_score(gts, res)

    def meteor():
        scorer = Meteor()
        scorer.compute_score(gts, res)
        scorer.__del__()

    _, times["bleu, rouge, cider"] = timed(nlg)
    _, times["meteor (java)"] = timed(meteor)

    def boot():
        rng = np.random.default_rng(0)
        for _ in range(boot_probe):
            idx = rng.integers(0, len(preds), len(preds))
            g = {k: gts[int(i)] for k, i in enumerate(idx)}
            r = {k: res[int(i)] for k, i in enumerate(idx)}
            Bleu(4).compute_score(g, r, verbose=0)
            Rouge().compute_score(g, r)
            Cider().compute_score(g, r)

    _, t_probe = timed(boot)
    times["bootstrap"] = t_probe / boot_probe  # per resample; scaled by the caller
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--naive-probe", type=int, default=3, help="naive bootstrap resamples actually timed"
    )
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"IU annotation not found: {args.data}")

    from radialog.metrics import score_reports

    preds, refs = build_pairs(args.data, args.n)
    result, total = timed(
        lambda: score_reports(
            preds, refs, bertscore=False, bootstrap=args.bootstrap, progress=False
        )
    )
    ours = result["timings_s"]
    base = naive(preds, refs, args.naive_probe)
    base["bootstrap"] *= args.bootstrap

    print(
        f"{args.n} report pairs (real IU X-ray text), {args.bootstrap} bootstrap resamples, no BERTScore"
    )
    print(f"{'stage':38s} {'radialog s':>11s} {'naive s':>10s} {'speed-up':>9s}")
    stages = ("tokenize", "bleu, rouge, cider", "meteor (java)", "labeling", "bootstrap")
    for stage in stages:
        o, b = ours.get(stage, 0.0), base.get(stage)
        ratio = f"{b / o:8.1f}x" if b and o else "        -"
        note = " (extrapolated)" if stage == "bootstrap" else ""
        print(f"{stage:38s} {o:11.2f} {b if b is not None else float('nan'):10.2f} {ratio}{note}")
    print(
        f"{'total (score_reports)':38s} {total:11.2f} {sum(base.values()):10.2f} {sum(base.values()) / total:8.1f}x"
    )
    m = result["metrics"]
    for key in (
        "bleu_4",
        "meteor",
        "rouge_l",
        "cider",
        "ce_radialog_uncertain_negative/f1_macro/14",
    ):
        print(
            f"  {key:45s} {m[key]['value']:.4f} [{m[key]['ci_low']:.4f}, {m[key]['ci_high']:.4f}]"
        )


if __name__ == "__main__":
    main()
