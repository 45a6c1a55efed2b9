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

from radialog.errors import InvalidInputError

PROGRESS_MIN = 200  # show a progress bar from this many reports on
CHUNK = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, help="CSV (columns id,text) or JSONL ({'id','text'} per line)"
    )
    parser.add_argument("--out", type=Path, default=None, help="output CSV (default: stdout)")
    parser.add_argument("--evidence", action="store_true", help="add a JSON 'evidence' column")
    parser.add_argument(
        "--labeler",
        default="rules",
        help="'rules' (built in) or the path of a CheXbert checkpoint (chexbert.pth or its directory)",
    )
    parser.add_argument(
        "--chexbert-tokenizer",
        type=Path,
        default=None,
        help="local bert-base-uncased directory (vocab.txt) for CheXbert; default: beside the checkpoint",
    )


def read_reports(path: Path) -> list[tuple[str, str]]:
    """(id, text) pairs from a CSV or JSONL file; errors name the row or line."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path)
    return _read_csv(path)


def _read_csv(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "text"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidInputError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; the CSV needs a header "
                f"with 'id' and 'text' (found: {', '.join(reader.fieldnames or []) or 'no header'})"
            )
        rows = []
        for row in reader:
            line = reader.line_num
            rid = (row.get("id") or "").strip()
            if not rid:
                raise InvalidInputError(f"{path}: row ending on line {line} has an empty 'id'")
            rows.append((rid, row.get("text") or ""))
        return rows


def _read_jsonl(path: Path) -> list[tuple[str, str]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(
                    f"{path}: line {number} is not valid JSON ({exc.msg})"
                ) from None
            if not isinstance(record, dict):
                raise InvalidInputError(
                    f"{path}: line {number} must be a JSON object with 'id' and 'text'"
                )
            rid = record.get("id")
            if rid is None or str(rid).strip() == "":
                raise InvalidInputError(f"{path}: line {number} has no 'id'")
            text = record.get("text")
            if not isinstance(text, str):
                raise InvalidInputError(f"{path}: line {number} needs a string 'text'")
            rows.append((str(rid), text))
    return rows


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
