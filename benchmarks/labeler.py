"""Accuracy and speed of the rule labeler: OpenI reports with NegBio's gold labels, and the
careful IU development set (hand labels with the conventions of docs/LABELING.md).

Reports: torchxrayvision's `NLMCXR_reports.tgz` (FINDINGS + IMPRESSION of each XML file,
id = its `CXR<uid>`). Gold: NegBio's `openi_gld_std14.csv` (manual MeSH coding), on the
seven classes that map onto CheXpert. Our -1 (uncertain) counts as positive, blank as
negative. Speed is reports per second on one core (labeling only, parsing excluded), against a
baseline in the same process: the CheXbert architecture (BERT-base, as Stanford's checkpoint;
random weights, which cost the same compute) on the first `--chexbert-reports` reports.

Careful set (`benchmarks/labels/iu-careful/adjudicated.jsonl`, ids and labels only; the text
is each report's FINDINGS section from torchxrayvision's package): micro F1 on positives (a
cell is positive when its value is 1; uncertain, negative and blank are not), per label and
micro, with 95 % bootstrap intervals over reports, on the development part (the rules were
tuned on it) and the held-out part (they were not) separately.

    .venv/bin/python benchmarks/labeler.py [--gold PATH] [--careful DIR] [--errors 20]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import random
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GOLD = ROOT.parent / "shared" / "data" / "negbio" / "openi_gld_std14.csv"
DEFAULT_CAREFUL = ROOT / "benchmarks" / "labels" / "iu-careful"

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


def read_findings(archive: Path) -> dict[str, str]:
    """{CXR<uid>: FINDINGS text} (whitespace normalised) for every report with findings."""
    from radialog.data.iu import read_reports

    out = {}
    for r in read_reports(archive):
        text = " ".join((r.sections.get("FINDINGS") or "").split())
        if text:
            out[r.uid] = text
    return out


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def positive_counts(
    gold: list[dict[str, int]], pred: list[dict[str, int | None]], labels: list[str]
) -> np.ndarray:
    """Per report and label: (tp, fp, fn) of positives (value 1)."""
    out = np.zeros((len(gold), len(labels), 3), dtype=np.int64)
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        for j, name in enumerate(labels):
            t, q = g.get(name) == 1, p.get(name) == 1
            out[i, j] = (t and q, q and not t, t and not q)
    return out


def careful_table(
    name: str, ids: list[str], gold: dict, texts: dict[str, str], labeler, samples: int = 1000
) -> list[str]:
    """The careful-set table for one part: per label and micro F1 with bootstrap CIs."""
    from radialog.labels import CHEXPERT_LABELS

    labels = list(CHEXPERT_LABELS)
    results = labeler.label([texts[i] for i in ids])
    counts = positive_counts([gold[i] for i in ids], [dict(r.labels) for r in results], labels)
    rng = np.random.default_rng(0)
    boots = [counts[rng.integers(0, len(ids), len(ids))] for _ in range(samples)]

    def ci(values: list[float]) -> str:
        lo, hi = np.percentile(values, [2.5, 97.5])
        return f"[{lo:.2f}-{hi:.2f}]"

    lines = [f"{name}: {len(ids)} reports (FINDINGS; positives = value 1)"]
    lines.append(f"{'label':<28}{'support':>8}{'P':>7}{'R':>7}{'F1':>7}  95% CI")
    for j, label in enumerate(labels):
        tp, fp, fn = counts[:, j].sum(0)
        if tp + fn + fp == 0:
            continue
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1s = [_f1(*b[:, j].sum(0)) for b in boots]
        lines.append(f"{label:<28}{tp + fn:>8}{p:>7.3f}{r:>7.3f}{_f1(tp, fp, fn):>7.3f}  {ci(f1s)}")
    tp, fp, fn = counts.sum((0, 1))
    micro = [_f1(*b.sum((0, 1))) for b in boots]
    lines.append(
        f"{'micro':<28}{tp + fn:>8}{tp / max(1, tp + fp):>7.3f}{tp / max(1, tp + fn):>7.3f}"
        f"{_f1(tp, fp, fn):>7.3f}  {ci(micro)}"
    )
    return lines


def read_careful(folder: Path) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]] | None:
    """(part -> ids, id -> labels) of the adjudicated careful set, None when absent."""
    ids_file, labels_file = folder / "ids.json", folder / "adjudicated.jsonl"
    if not (ids_file.is_file() and labels_file.is_file()):
        return None
    parts = json.loads(ids_file.read_text(encoding="utf-8"))
    gold = {}
    for line in labels_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            gold[row["id"]] = row["labels"]
    return {k: [i for i in parts[k] if i in gold] for k in ("dev", "heldout")}, gold


def _careful_errors(ids, gold, texts, labeler, only, n) -> None:  # noqa: ANN001
    """Disagreements on positives in the development part (never the held-out part)."""
    from radialog.labels import CHEXPERT_LABELS

    results = labeler.label([texts[i] for i in ids])
    for label in CHEXPERT_LABELS:
        if only and label != only:
            continue
        errs = []
        for rid, res in zip(ids, results, strict=True):
            t, q = gold[rid].get(label) == 1, res.labels.get(label) == 1
            if t != q:
                ev = " | ".join(res.evidence.get(label, []))
                errs.append(("FP" if q else "FN", rid, gold[rid].get(label), ev or texts[rid]))
        if errs:
            print(f"\n=== careful dev {label}: {len(errs)} disagreements")
            for kind, rid, g, detail in errs[:n]:
                print(f"{kind} {rid} (gold {g}): {detail[:300]}")


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
    parser.add_argument("--careful", type=Path, default=DEFAULT_CAREFUL)
    parser.add_argument(
        "--labeler",
        default="rules",
        help="'rules' (default) or a CheXbert checkpoint (chexbert.pth or its folder)",
    )
    parser.add_argument(
        "--tokenizer", default=None, help="local bert-base-uncased folder for a CheXbert labeler"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N OpenI reports only")
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
    from radialog.labeler import get_labeler

    reports = read_openi_reports(reports_archive())
    gold = read_gold(args.gold)
    ids = sorted(i for i in gold if i in reports)[: args.limit]
    texts = [reports[i] for i in ids]

    labeler = get_labeler(args.labeler, tokenizer=args.tokenizer)
    print(f"labeler: {args.labeler}")
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
    if args.labeler not in ("rules", "rule", "chexpert-rules"):
        args.chexbert_reports = 0  # the speed baseline compares the rule labeler
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

    careful = read_careful(args.careful)
    if careful is None:
        print(f"\n(no adjudicated careful set in {args.careful})")
    else:
        parts, gold_c = careful
        findings = read_findings(reports_archive())
        for part, title in (
            ("heldout", "careful IU, held out"),
            ("dev", "careful IU, development"),
        ):
            print()
            print("\n".join(careful_table(title, parts[part], gold_c, findings, labeler)))
        if args.errors:
            _careful_errors(parts["dev"], gold_c, findings, labeler, args.only, args.errors)

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
