"""`radialog label FILE`: the 14 CheXpert labels for each report in a CSV or JSONL file.

Input: CSV with columns `id` and `text`, or JSONL with one `{"id": ..., "text": ...}` per
line. Output CSV: `id`, the 14 labels in canonical order (1, 0, -1 or empty), and with
`--evidence` a JSON column of the sentences that decided each label.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from radialog.commands.options import add_labeler_argument
from radialog.data.tables import read_reports

PROGRESS_MIN = 200  # show a progress bar from this many reports on
CHUNK = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, help="CSV (columns id,text) or JSONL ({'id','text'} per line)"
    )
    parser.add_argument("--out", type=Path, default=None, help="output CSV (default: stdout)")
    parser.add_argument("--evidence", action="store_true", help="add a JSON 'evidence' column")
    add_labeler_argument(parser)
    parser.add_argument(
        "--chexbert-tokenizer",
        type=Path,
        default=None,
        help="local bert-base-uncased directory (vocab.txt) for CheXbert; default: beside the checkpoint",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from radialog.labeler import get_labeler
    from radialog.labels import CHEXPERT_LABELS

    reports = read_reports(args.file)
    labeler = get_labeler(args.labeler, tokenizer=args.chexbert_tokenizer)
    texts = [text for _, text in reports]
    results = []
    with tqdm(
        total=len(texts), unit="report", file=sys.stderr, disable=len(texts) < PROGRESS_MIN
    ) as bar:
        for start in range(0, len(texts), CHUNK):
            chunk = labeler.label(texts[start : start + CHUNK])
            results.extend(chunk)
            bar.update(len(chunk))

    out = args.out.open("w", newline="", encoding="utf-8") if args.out else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(["id", *CHEXPERT_LABELS, *(["evidence"] if args.evidence else [])])
        for (rid, _), result in zip(reports, results, strict=True):
            values = ["" if v is None else str(v) for v in result.labels.values()]
            extra = [json.dumps(result.evidence, ensure_ascii=False)] if args.evidence else []
            writer.writerow([rid, *values, *extra])
    finally:
        if args.out:
            out.close()
    return 0
