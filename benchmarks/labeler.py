"""Accuracy and speed of the rule labeler on OpenI (IU X-ray) reports with NegBio's gold labels.

Reports: torchxrayvision's `NLMCXR_reports.tgz` (FINDINGS + IMPRESSION of each XML file,
id = its `CXR<uid>`). Gold: NegBio's `openi_gld_std14.csv` (manual MeSH coding), on the
seven classes that map onto CheXpert. Our -1 (uncertain) counts as positive, blank as
negative. Speed is reports per second on one core (labeling only, parsing excluded), against a
baseline in the same process: the CheXbert architecture (BERT-base, as Stanford's checkpoint;
random weights, which cost the same compute) on the first `--chexbert-reports` reports.

    .venv/bin/python benchmarks/labeler.py [--gold PATH] [--errors 20]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import random
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GOLD = ROOT.parent / "shared" / "data" / "negbio" / "openi_gld_std14.csv"

# NegBio gold column -> CheXpert label
CLASSES = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Effusion": "Pleural Effusion",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
}


def chexbert_speed(texts: list[str]) -> float:
    """Reports/s (CPU time, one thread) of CheXbert-sized inference on `texts`."""
    import torch
    from transformers import BertConfig, BertTokenizer

    from radialog.labeler.chexbert import CheXbertLabeler, CheXbertModel
    from radialog.metrics.bertscore import default_encoder_path

    torch.set_num_threads(1)
    torch.manual_seed(0)
    # BertConfig() is bert-base-uncased's shape; MiniLM ships the same uncased vocabulary.
    labeler = CheXbertLabeler(
        CheXbertModel(BertConfig()), BertTokenizer.from_pretrained(default_encoder_path())
    )
    labeler.label(texts[:16])  # warm-up
    c0 = time.process_time()
    labeler.label(texts)
    return len(texts) / (time.process_time() - c0)


def reports_archive() -> Path:
    spec = importlib.util.find_spec("torchxrayvision")  # locate only: never import it
    if spec is None or not spec.submodule_search_locations:
        sys.exit("torchxrayvision is not installed (make install puts it in the venv)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "NLMCXR_reports.tgz"
    if not path.exists():
        sys.exit(f"missing {path}")
    return path


def read_openi_reports(archive: Path) -> dict[str, str]:
    """{CXR<uid>: FINDINGS + IMPRESSION text} for every report in the archive."""
    reports: dict[str, str] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.name.endswith(".xml"):
                continue
            root = ET.parse(tar.extractfile(member)).getroot()
            uid = root.find(".//uId")
            if uid is None:
                continue
            sections = {
                el.get("Label"): (el.text or "").strip() for el in root.iter("AbstractText")
            }
            parts = [sections.get("FINDINGS", ""), sections.get("IMPRESSION", "")]
            reports[uid.get("id")] = "\n\n".join(p for p in parts if p)
    return reports


def read_gold(path: Path) -> dict[str, dict[str, int]]:
    with path.open(newline="") as fh:
        return {
            row["filename"]: {col: int(row[col]) for col in CLASSES} for row in csv.DictReader(fh)
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD)
    parser.add_argument(
        "--errors", type=int, default=0, help="print N false positives/negatives per class"
    )
    parser.add_argument(
        "--class", dest="only", default=None, help="limit --errors to one gold class"
    )
    parser.add_argument(
        "--chexbert-reports",
        type=int,
        default=128,
        help="reports for the CheXbert speed baseline (0: skip)",
    )
    args = parser.parse_args(argv)
    if not args.gold.exists():
        sys.exit(f"gold labels not found: {args.gold}")

    import torch

    torch.set_num_threads(1)
    from radialog.labeler import RuleLabeler

    reports = read_openi_reports(reports_archive())
    gold = read_gold(args.gold)
    ids = sorted(i for i in gold if i in reports)
    texts = [reports[i] for i in ids]

    labeler = RuleLabeler()
    labeler.label(texts[:50])  # warm regex caches
    # CPU time of this process: the labeler is single-threaded, and CPU time stays honest
    # when other jobs share the machine (wall time is printed too).
    t0, c0 = time.perf_counter(), time.process_time()
    results = labeler.label(texts)
    seconds, wall = time.process_time() - c0, time.perf_counter() - t0

    rows = []
    tp_all = fp_all = fn_all = 0
    errors: dict[str, list[tuple[str, str, str]]] = {}
    for col, label in CLASSES.items():
        tp = fp = fn = 0
        for rid, text, res in zip(ids, texts, results, strict=True):
            pred = res.labels[label] in (1, -1)
            truth = gold[rid][col] == 1
            tp += pred and truth
            fp += pred and not truth
            fn += truth and not pred
            if pred != truth:
                kind = "FP" if pred else "FN"
                detail = " | ".join(res.evidence.get(label, [])) if pred else text
                errors.setdefault(col, []).append((kind, rid, detail))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        rows.append((f"{col} ({label})" if col != label else col, tp + fn, p, r, f))
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    # The same with -1 counted as negative, to show how much hedged mentions cost.
    strict = [0, 0, 0]
    for col, label in CLASSES.items():
        for rid, res in zip(ids, results, strict=True):
            pred, truth = res.labels[label] == 1, gold[rid][col] == 1
            strict[0] += pred and truth
            strict[1] += pred and not truth
            strict[2] += truth and not pred
    mp = tp_all / (tp_all + fp_all)
    mr = tp_all / (tp_all + fn_all)
    mf = 2 * mp * mr / (mp + mr)

    print(
        f"OpenI reports with gold labels: {len(ids)} (FINDINGS + IMPRESSION; -1 counted as positive)"
    )
    print(f"{'class':<34}{'support':>8}{'P':>8}{'R':>8}{'F1':>8}")
    for name, support, p, r, f in rows:
        print(f"{name:<34}{support:>8}{p:>8.3f}{r:>8.3f}{f:>8.3f}")
    print(f"{'micro':<34}{tp_all + fn_all:>8}{mp:>8.3f}{mr:>8.3f}{mf:>8.3f}")
    sp = strict[0] / max(1, strict[0] + strict[1])
    sr = strict[0] / max(1, strict[0] + strict[2])
    sf = 2 * sp * sr / (sp + sr) if sp + sr else 0.0
    print(
        f"{'micro, -1 counted as negative':<34}{tp_all + fn_all:>8}{sp:>8.3f}{sr:>8.3f}{sf:>8.3f}"
    )
    rules_speed = len(texts) / seconds
    print(
        f"speed: {rules_speed:,.0f} reports/s on one core "
        f"({seconds:.2f} s CPU, {wall:.2f} s wall for {len(texts)} reports)"
    )
    if args.chexbert_reports:
        bert_speed = chexbert_speed(texts[: args.chexbert_reports])
        print(
            f"baseline: CheXbert-sized BERT-base {bert_speed:,.1f} reports/s on one core "
            f"({args.chexbert_reports} reports); rule labeler {rules_speed / bert_speed:,.0f}x faster"
        )

    if args.errors:
        rng = random.Random(0)
        for col, errs in errors.items():
            if args.only and col != args.only:
                continue
            print(
                f"\n=== {col}: {sum(e[0] == 'FP' for e in errs)} FP, {sum(e[0] == 'FN' for e in errs)} FN"
            )
            for kind, rid, detail in rng.sample(errs, min(args.errors, len(errs))):
                print(f"{kind} {rid}: {detail[:400]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
