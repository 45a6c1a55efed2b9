"""`radialog score --pred P --ref R`: every report metric with 95% bootstrap CIs.

P and R are CSV (columns id,text) or JSONL ({"id","text"} per line); reports are matched by id.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radialog.errors import InvalidInputError

SHOW_IDS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pred", type=Path, required=True, help="predicted reports: CSV (id,text) or JSONL"
    )
    parser.add_argument(
        "--ref", type=Path, required=True, help="reference reports: CSV (id,text) or JSONL"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="write every metric with CI and convention here"
    )
    parser.add_argument(
        "--plot", type=Path, default=None, help="write a per-label F1 bar chart (PNG)"
    )
    parser.add_argument("--no-bertscore", action="store_true", help="skip BERTScore")
    parser.add_argument(
        "--bertscore-model",
        default=None,
        help="local model directory for BERTScore (default: bundled all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--bertscore-layer", type=int, default=None, help="encoder layer for BERTScore"
    )
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    parser.add_argument(
        "--labeler",
        default="rules",
        help="'rules' or a CheXbert checkpoint path, for clinical efficacy",
    )
    parser.add_argument(
        "--no-clinical", action="store_true", help="skip clinical efficacy (labeling)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no CIs)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def _by_id(path: Path) -> dict[str, str]:
    from radialog.commands.label import read_reports

    out: dict[str, str] = {}
    for rid, text in read_reports(path):
        if rid in out:
            raise InvalidInputError(
                f"{path}: id {rid!r} appears more than once; ids must be unique"
            )
        out[rid] = text
    if not out:
        raise InvalidInputError(f"{path}: no reports found")
    return out


def match_reports(pred_path: Path, ref_path: Path) -> tuple[list[str], list[str], list[str]]:
    """(ids, predictions, references) matched by id, in the reference file's order."""
    preds, refs = _by_id(pred_path), _by_id(ref_path)
    missing_pred = [i for i in refs if i not in preds]
    missing_ref = [i for i in preds if i not in refs]
    if missing_pred or missing_ref:
        parts = []
        for ids, where in ((missing_pred, pred_path), (missing_ref, ref_path)):
            if ids:
                shown = ", ".join(ids[:SHOW_IDS]) + (", ..." if len(ids) > SHOW_IDS else "")
                parts.append(f"{len(ids)} id(s) missing in {where}: {shown}")
        raise InvalidInputError(
            "predictions and references must have the same ids; " + "; ".join(parts)
        )
    ids = list(refs)
    return ids, [preds[i] for i in ids], [refs[i] for i in ids]


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot_per_label_f1(
    per_label: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path, n: int
) -> None:
    """Grouped horizontal bars: per-label F1 under each CE convention; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from radialog.labels import CHEXPERT_LABELS

    conventions = list(per_label)
    fig, ax = plt.subplots(figsize=(8, 6))
    height = 0.8 / max(1, len(conventions))
    y = np.arange(len(CHEXPERT_LABELS))
    for k, conv in enumerate(conventions):
        f1 = [per_label[conv][name]["f1"] for name in CHEXPERT_LABELS]
        ax.barh(y + k * height, f1, height=height, label=conv)
    ax.set_yticks(y + height * (len(conventions) - 1) / 2, CHEXPERT_LABELS)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title(f"Per-label F1 (n = {n} reports)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def print_table(result: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    boot = result["bootstrap"]["samples"]
    table = Table(
        title=f"radialog score: {result['n']} reports"
        + (f", 95% CI from {boot} resamples" if boot else "")
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for key, m in result["metrics"].items():
        ci = f"[{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]" if m["ci_low"] is not None else ""
        table.add_row(key, _fmt(m["value"]), ci)
    console = Console()
    console.print(table)
    if result.get("bertscore"):
        b = result["bertscore"]
        console.print(
            f"BERTScore: encoder {b['encoder']}, layer {b['layer']}, rescaled={b['rescaled']}"
        )
    if result.get("labeler"):
        console.print(f"Clinical efficacy labeler: {result['labeler']}")


def run(args: argparse.Namespace) -> int:
    from radialog.metrics import score_reports

    if args.bootstrap < 0:
        raise InvalidInputError("--bootstrap must be >= 0")
    ids, preds, refs = match_reports(args.pred, args.ref)
    bertscore: bool | str = False if args.no_bertscore else (args.bertscore_model or True)
    result = score_reports(
        preds,
        refs,
        labeler=False if args.no_clinical else args.labeler,
        bertscore=bertscore,
        bertscore_layer=args.bertscore_layer,
        meteor=not args.no_meteor,
        bootstrap=args.bootstrap,
        seed=args.seed,
        progress=True,
    )
    result["inputs"] = {"pred": str(args.pred), "ref": str(args.ref)}
    print_table(result)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2, allow_nan=False) + "\n")
    if args.plot:
        if not result["per_label"]:
            raise InvalidInputError("--plot needs clinical efficacy; drop --no-clinical")
        plot_per_label_f1(result["per_label"], args.plot, result["n"])
    return 0
