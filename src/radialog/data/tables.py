"""Row-per-record input files: CSV/TSV with a header row, or JSONL with one JSON object a line.

`read_table` does the parsing shared by every such input (`radialog label`/`score` report
files, the custom dataset); callers check the columns they need and word their own errors.
`read_reports` reads the `id,text` report files of `radialog label` and `radialog score`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from radialog.errors import InvalidInputError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")

RowProblem = Literal["invalid_json", "not_object", "extra_values"]


@dataclass(frozen=True)
class Row:
    """One record. `line`: its line number (for CSV, the line the record ends on; header = 1)."""

    line: int
    fields: dict[str, Any]
    # Why the record is not clean: "invalid_json" / "not_object" (fields empty; `detail` holds
    # the JSON error) or "extra_values" (a CSV row longer than the header; the extra is dropped).
    problem: RowProblem | None = None
    detail: str = ""


@dataclass(frozen=True)
class Table:
    columns: list[str] | None  # the CSV header; None for JSONL, whose keys vary per line
    rows: list[Row]


def read_table(path: Path, *, lower_keys: bool = False) -> Table:
    """Parse a JSONL (by suffix: .jsonl, .ndjson, .json), TSV (.tsv) or CSV file (anything else).

    Blank JSONL lines are skipped. `lower_keys` strips and lower-cases column names / keys.
    """
    key = (lambda k: str(k).strip().lower()) if lower_keys else str
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return Table(None, list(_jsonl_rows(path, key)))
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
        columns = [key(c) for c in reader.fieldnames or []]
        rows = [
            Row(
                reader.line_num,
                {key(k): v for k, v in raw.items() if k is not None},
                "extra_values" if None in raw else None,
            )
            for raw in reader
        ]
    return Table(columns, rows)


def _jsonl_rows(path: Path, key: Any) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append(Row(number, {}, "invalid_json", exc.msg))
                continue
            if not isinstance(obj, dict):
                rows.append(Row(number, {}, "not_object"))
                continue
            rows.append(Row(number, {key(k): v for k, v in obj.items()}))
    return rows


def read_reports(path: Path) -> list[tuple[str, str]]:
    """(id, text) pairs from a CSV (columns id,text) or JSONL file; errors name the row or line."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    table = read_table(path)
    if table.columns is not None:
        missing = {"id", "text"} - set(table.columns)
        if missing:
            raise InvalidInputError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; the CSV needs a header "
                f"with 'id' and 'text' (found: {', '.join(table.columns) or 'no header'})"
            )
        return [_csv_report(path, row) for row in table.rows]
    return [_jsonl_report(path, row) for row in table.rows]


def _csv_report(path: Path, row: Row) -> tuple[str, str]:
    rid = (row.fields.get("id") or "").strip()
    if not rid:
        raise InvalidInputError(f"{path}: row ending on line {row.line} has an empty 'id'")
    return rid, row.fields.get("text") or ""


def _jsonl_report(path: Path, row: Row) -> tuple[str, str]:
    number = row.line
    if row.problem == "invalid_json":
        raise InvalidInputError(f"{path}: line {number} is not valid JSON ({row.detail})")
    if row.problem == "not_object":
        raise InvalidInputError(f"{path}: line {number} must be a JSON object with 'id' and 'text'")
    rid = row.fields.get("id")
    if rid is None or str(rid).strip() == "":
        raise InvalidInputError(f"{path}: line {number} has no 'id'")
    text = row.fields.get("text")
    if not isinstance(text, str):
        raise InvalidInputError(f"{path}: line {number} needs a string 'text'")
    return str(rid), text
