"""MIMIC-CXR(-JPG) 2.0.0 studies from a local copy laid out as PhysioNet ships it.

Expected under `root` (the mimic-cxr-jpg `2.0.0/` folder; `.csv` or `.csv.gz`):
- `mimic-cxr-2.0.0-split.csv`: dicom_id, study_id, subject_id, split (train/validate/test)
- `mimic-cxr-2.0.0-metadata.csv`: dicom_id, ..., ViewPosition
- `mimic-cxr-2.0.0-chexpert.csv` (optional): subject_id, study_id and the 14 labels
  (1.0 / 0.0 / -1.0 / blank), read by column name
- `files/pXX/pSUBJECT/sSTUDY/DICOM.jpg`: images (paths are returned relative to `root`
  joined onto it; missing image files are allowed, the path is still given)
Reports (`files/pXX/pSUBJECT/sSTUDY.txt`) are read from `reports_root` (the mimic-cxr
`2.0.0/` folder, default: `root`).

Labels: `labels="chexpert"` reads the CheXpert CSV (falls back to the labeler when it is
absent), `"labeler"` runs our labeler on the findings section (RaDialog's convention),
`None` leaves them unset. Studies without a report file are skipped (logged).
"""

from __future__ import annotations

import csv
import gzip
import logging
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

from radialog.data.labeling import label_texts
from radialog.data.sections import report_sections
from radialog.data.study import (
    Study,
    StudyImage,
    labels_from_mapping,
    normalize_split,
    normalize_view,
)
from radialog.errors import InvalidInputError
from radialog.labels import CHEXPERT_LABELS

logger = logging.getLogger(__name__)

SPLIT_FILE = "mimic-cxr-2.0.0-split.csv"
METADATA_FILE = "mimic-cxr-2.0.0-metadata.csv"
CHEXPERT_FILE = "mimic-cxr-2.0.0-chexpert.csv"


def _find(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return path.open(newline="", encoding="utf-8")


def _rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    with _open(path) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(reader)


def study_dir(subject_id: str, study_id: str) -> Path:
    """files/pXX/pSUBJECT/sSTUDY (relative)."""
    return Path("files") / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}"


def read_chexpert_csv(path: Path) -> dict[str, dict[str, int | None]]:
    """study_id -> 14 labels; columns are matched by name (CheXbert writes No Finding last)."""
    rows = _rows(path, ("study_id",))
    out = {}
    for line, row in enumerate(rows, start=2):
        values = {k: v for k, v in row.items() if k in CHEXPERT_LABELS}
        try:
            out[row["study_id"].strip()] = labels_from_mapping(values)
        except ValueError as exc:
            raise InvalidInputError(f"{path} row {line}: {exc}") from None
    return out


def load_mimic(
    root: str | Path,
    split: str | None = None,
    reports_root: str | Path | None = None,
    labels: str | None = "chexpert",
    labeler: Any = "rules",
    require_findings: bool = False,
) -> list[Study]:
    """Studies of MIMIC-CXR (one per study_id, all its images), ordered by study id."""
    root = Path(root)
    reports_root = Path(reports_root) if reports_root else root
    split_path = _find(root, SPLIT_FILE)
    if split_path is None:
        raise InvalidInputError(
            f"{SPLIT_FILE}(.gz) not found under {root}; pass the mimic-cxr-jpg 2.0.0 folder as root"
        )
    if labels not in {"chexpert", "labeler", None}:
        raise ValueError("labels must be 'chexpert', 'labeler' or None")
    wanted = normalize_split(split)

    views: dict[str, str | None] = {}
    meta_path = _find(root, METADATA_FILE)
    if meta_path is not None:
        views = {
            r["dicom_id"]: normalize_view(r.get("ViewPosition"))
            for r in _rows(meta_path, ("dicom_id",))
        }
    else:
        logger.warning("no %s under %s: views will be None", METADATA_FILE, root)

    images: dict[tuple[str, str], list[StudyImage]] = defaultdict(list)
    splits: dict[tuple[str, str], str] = {}
    for row in _rows(split_path, ("dicom_id", "study_id", "subject_id", "split")):
        key = (row["subject_id"].strip(), row["study_id"].strip())
        study_split = normalize_split(row["split"])
        if wanted is not None and study_split != wanted:
            continue
        splits[key] = study_split
        dicom = row["dicom_id"].strip()
        path = root / study_dir(*key) / f"{dicom}.jpg"
        images[key].append(StudyImage(path=path, view=views.get(dicom), image_id=dicom))

    chexpert: dict[str, dict[str, int | None]] = {}
    mode = labels
    if labels == "chexpert":
        label_path = _find(root, CHEXPERT_FILE)
        if label_path is None:
            logger.warning(
                "no %s under %s: labelling findings with our labeler", CHEXPERT_FILE, root
            )
            mode = "labeler"
        else:
            chexpert = read_chexpert_csv(label_path)

    studies = []
    missing = 0
    for key in sorted(images, key=lambda k: (int(k[1]), k[0])):
        report_path = reports_root / study_dir(*key).with_suffix(".txt")
        try:
            text = report_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            missing += 1
            continue
        sections = report_sections(text)
        if require_findings and not sections["findings"]:
            continue
        subject_id, study_id = key
        studies.append(
            Study(
                id=f"s{study_id}",
                images=images[key],
                findings=sections["findings"],
                impression=sections["impression"],
                indication=sections["indication"],
                comparison=sections["comparison"],
                labels=chexpert.get(study_id) if mode == "chexpert" else None,
                split=splits[key],
                meta={"dataset": "mimic", "subject_id": subject_id, "study_id": study_id},
            )
        )
    if missing:
        logger.warning("%d studies have no report file under %s (skipped)", missing, reports_root)
    if mode == "labeler":
        results = label_texts([s.findings for s in studies], labeler)
        for study, result in zip(studies, results, strict=True):
            study.labels = result[0] if result else None
            if result:
                study.meta["evidence"] = result[1]
    return studies
