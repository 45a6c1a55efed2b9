"""`radialog score --pred P --ref R`: every report metric with 95% bootstrap CIs.

P and R are CSV (columns id,text) or JSONL ({"id","text"} per line); reports are matched by id.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radialog.commands.options import add_labeler_argument, add_metric_arguments
from radialog.data.tables import read_reports
from radialog.errors import InvalidInputError
from radialog.fileio import atomic_write_json

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
    add_metric_arguments(parser)
    parser.add_argument(
        "--bertscore-layer", type=int, default=None, help="encoder layer for BERTScore"
    )
    add_labeler_argument(parser)
    parser.add_argument(
        "--no-clinical", action="store_true", help="skip clinical efficacy (labeling)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def _by_id(path: Path) -> dict[str, str]:
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
        atomic_write_json(args.json, result)
    if args.plot:
        if not result["per_label"]:
            raise InvalidInputError("--plot needs clinical efficacy; drop --no-clinical")
        from radialog.metrics.plots import plot_per_label_f1

        series = {
            convention: {label: row["f1"] for label, row in table.items()}
            for convention, table in result["per_label"].items()
        }
        plot_per_label_f1(series, args.plot, f"Per-label F1 (n = {result['n']} reports)")
    return 0
