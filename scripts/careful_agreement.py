"""Agreement between the two labelling passes of the careful IU set, and the list of
disagreements an adjudicator must decide.

    python scripts/careful_agreement.py            # agreement figures
    python scripts/careful_agreement.py --list     # + each disagreement with the report text

Figures: micro F1 on positives of pass B against pass A, Cohen's kappa on the positive /
not-positive decision over all 14 x N cells, and exact agreement on the cells at least one
pass filled (1 / -1 / 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[1] / "benchmarks" / "labels" / "iu-careful"


def read_pass(path: Path) -> dict[str, dict[str, int]]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return {r["id"]: r["labels"] for r in rows}


def agreement(a: dict, b: dict, labels: list[str]) -> dict[str, float]:
    ids = sorted(set(a) & set(b))
    tp = fp = fn = tn = 0
    filled = same = 0
    for i in ids:
        for name in labels:
            x, y = a[i].get(name), b[i].get(name)
            pa, pb = x == 1, y == 1
            tp += pa and pb
            fp += pb and not pa
            fn += pa and not pb
            tn += not pa and not pb
            if x is not None or y is not None:
                filled += 1
                same += x == y
    n = tp + fp + fn + tn
    observed = (tp + tn) / n
    expected = ((tp + fn) * (tp + fp) + (tn + fp) * (tn + fn)) / n**2
    return {
        "reports": len(ids),
        "micro_f1_positives": 2 * tp / (2 * tp + fp + fn),
        "kappa_positives": (observed - expected) / (1 - expected),
        "exact_on_filled": same / filled,
        "cells_filled": filled,
    }


def main(argv: list[str] | None = None) -> int:
    from radialog.labels import CHEXPERT_LABELS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    a, b = read_pass(FOLDER / "pass_a.jsonl"), read_pass(FOLDER / "pass_b.jsonl")
    labels = list(CHEXPERT_LABELS)
    for key, value in agreement(a, b, labels).items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    if args.list:
        from radialog.data.iu import read_reports, torchxrayvision_data_dir

        reports = read_reports(torchxrayvision_data_dir() / "NLMCXR_reports.tgz")
        texts = {r.uid: " ".join((r.sections.get("FINDINGS") or "").split()) for r in reports}
        order = json.loads((FOLDER / "ids.json").read_text())
        for i in order["dev"] + order["heldout"]:
            diffs = [
                f"{n}: A={a[i].get(n)} B={b[i].get(n)}"
                for n in labels
                if a[i].get(n) != b[i].get(n)
            ]
            if diffs:
                print(f"\n{i}: {texts[i]}\n  " + "; ".join(diffs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
