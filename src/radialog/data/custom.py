""" "Bring your own data": studies from a CSV or JSONL file.

Columns (CSV header or JSON keys; names are case-insensitive):
- `id` (required): study id. Several rows with the same id are one study with several
  images; their report fields must then agree.
- `image` (required): image path, relative to the data file's folder (or absolute).
- `findings`, `impression` (at least one non-empty per study), `indication`, `comparison`
- `view`: PA / AP / LATERAL / LL / ... (optional)
- `split`: train / val (or validate) / test (optional)
- any of the 14 CheXpert label names (e.g. `Pleural Effusion`): 1, 0, -1 or blank.
  If no label column is present, labels are None (run `radialog label` or pass
  `labeler="rules"` to label the findings).

`validate_custom(path)` returns every problem as "row N: ..." (N is the CSV line number, header =
line 1, or the JSONL line number); `load_custom` raises `InvalidInputError` listing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radialog.data.labeling import label_texts
from radialog.data.study import (
    KNOWN_VIEWS,
    Study,
    StudyImage,
    normalize_split,
    normalize_view,
    parse_label_value,
)
from radialog.data.tables import read_table
from radialog.errors import InvalidInputError
from radialog.labels import CHEXPERT_LABELS

REQUIRED = ("id", "image")
TEXT_FIELDS = ("findings", "impression", "indication", "comparison")
OPTIONAL = (*TEXT_FIELDS, "view", "split")
_LABEL_KEYS = {name.lower(): name for name in CHEXPERT_LABELS}
_MAX_LISTED = 20


def _read_rows(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(line number, row with lower-cased keys) pairs and the problems found while reading."""
    if path.suffix.lower() not in {".jsonl", ".ndjson", ".csv", ".tsv"}:
        raise InvalidInputError(f"{path}: expected a .csv, .tsv or .jsonl file")
    table = read_table(path, lower_keys=True)
    if table.columns is not None:
        missing = [c for c in REQUIRED if c not in table.columns]
        if missing:
            return [], [f"row 1 (header): missing column(s) {', '.join(missing)}"]
    problems: list[str] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    for row in table.rows:
        if row.problem == "invalid_json":
            problems.append(f"row {row.line}: not valid JSON ({row.detail})")
            continue
        if row.problem == "not_object":
            problems.append(f"row {row.line}: expected a JSON object")
            continue
        if row.problem == "extra_values":
            problems.append(f"row {row.line}: more values than header columns")
        rows.append((row.line, row.fields))
    return rows, problems


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def parse_custom(path: str | Path, check_images: bool = True) -> tuple[list[Study], list[str]]:
    """Studies and a list of problems ("row N: what is wrong"); studies are valid only if none."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"data file not found: {path}")
    rows, problems = _read_rows(path)
    base = path.parent
    studies: dict[str, Study] = {}
    first_row: dict[str, int] = {}
    for line, row in rows:
        sid = _text(row.get("id"))
        if not sid:
            problems.append(f"row {line}: empty 'id'")
            continue
        image = _text(row.get("image"))
        if not image:
            problems.append(f"row {line}: empty 'image' (give the image path)")
        image_path = (base / image) if image else None
        if image_path is not None and check_images and not image_path.is_file():
            problems.append(f"row {line}: image file not found: {image_path}")
        view = normalize_view(_text(row.get("view")) or None)
        if view is not None and view not in KNOWN_VIEWS:
            problems.append(f"row {line}: unknown view {view!r} (use PA, AP, LATERAL, LL, ...)")
        try:
            split = normalize_split(_text(row.get("split")) or None)
        except ValueError:
            problems.append(
                f"row {line}: unknown split {row.get('split')!r} (use train, val or test)"
            )
            split = None
        labels: dict[str, int | None] | None = None
        label_cols = [k for k in row if k in _LABEL_KEYS]
        if label_cols:
            labels = dict.fromkeys(CHEXPERT_LABELS)
            for key in label_cols:
                try:
                    labels[_LABEL_KEYS[key]] = parse_label_value(row[key])
                except ValueError:
                    problems.append(
                        f"row {line}: column {_LABEL_KEYS[key]!r} has {row[key]!r}; use 1, 0, -1 or blank"
                    )
        unknown = [k for k in row if k not in (*REQUIRED, *OPTIONAL) and k not in _LABEL_KEYS]
        if unknown:
            problems.append(f"row {line}: unknown column(s) {', '.join(sorted(unknown))}")
        texts = {f: _text(row.get(f)) for f in TEXT_FIELDS}
        image_record = StudyImage(path=image_path, view=view, image_id=image or None)
        if sid in studies:
            study = studies[sid]
            for f in TEXT_FIELDS:
                if texts[f] != getattr(study, f):
                    problems.append(
                        f"row {line}: {f} differs from row {first_row[sid]} of study {sid!r}"
                    )
            study.images.append(image_record)
            continue
        if not texts["findings"] and not texts["impression"]:
            problems.append(f"row {line}: study {sid!r} has neither findings nor impression")
        first_row[sid] = line
        studies[sid] = Study(
            id=sid,
            images=[image_record],
            labels=labels,
            split=split,
            meta={"dataset": "custom", "row": line},
            **texts,
        )
    if not rows and not problems:
        problems.append(f"{path}: no rows")
    return list(studies.values()), problems


def validate_custom(path: str | Path, check_images: bool = True) -> list[str]:
    """Every problem in the file as "row N: ..."; an empty list means the file is valid."""
    return parse_custom(path, check_images)[1]


def load_custom(
    path: str | Path,
    split: str | None = None,
    check_images: bool = True,
    labeler: Any = None,
) -> list[Study]:
    """Studies from a custom CSV/JSONL; raises InvalidInputError naming each bad row.

    labeler: when given (e.g. "rules"), studies without label columns are labelled from
    their findings (impression if findings are empty).
    """
    studies, problems = parse_custom(path, check_images)
    if problems:
        shown = problems[:_MAX_LISTED]
        more = (
            f"\n... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        )
        raise InvalidInputError(
            f"{path}: {len(problems)} problem(s); fix them and retry:\n" + "\n".join(shown) + more
        )
    if labeler is not None:
        todo = [s for s in studies if s.labels is None]
        results = label_texts([s.findings or s.impression for s in todo], labeler)
        for study, result in zip(todo, results, strict=True):
            study.labels = result[0] if result else None
            if result:
                study.meta["evidence"] = result[1]
    wanted = normalize_split(split)
    return [s for s in studies if wanted is None or s.split == wanted]
