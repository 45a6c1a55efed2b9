"""IU X-ray adapter on the real report collection shipped in torchxrayvision's package data."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from data_paths import IU_R2GEN_ANNOTATION
from radialog.data.iu import IUXRay, parse_report_xml, torchxrayvision_data_dir
from radialog.labels import CHEXPERT_LABELS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchxrayvision") is None,
    reason="torchxrayvision package data not installed",
)


def test_parses_every_report_with_sections(iu: IUXRay) -> None:
    reports = iu.reports
    assert len(reports) == 3955
    assert len({r.uid for r in reports}) == 3955
    assert all(r.uid.startswith("CXR") for r in reports)
    with_findings = sum(bool(r.sections["FINDINGS"]) for r in reports)
    with_impression = sum(bool(r.sections["IMPRESSION"]) for r in reports)
    with_indication = sum(bool(r.sections["INDICATION"]) for r in reports)
    assert 3300 < with_findings < 3955
    assert with_impression > 3800
    assert with_indication > 3000
    n_images = sum(len(r.image_ids) for r in reports)
    assert 7400 < n_images < 7500
    assert all(i.startswith(r.uid + "_") for r in reports for i in r.image_ids)


def test_views_come_from_dicom_metadata(iu: IUXRay) -> None:
    views = Counter(view for view, _ in iu.views.values())
    assert views["PA"] > 3000 and views["LL"] > 500 and views["AP"] > 300
    # Unknown views stay None rather than being guessed.
    assert views[None] > 1000
    study = iu.studies()[0]
    assert all(image.path is None for image in study.images)  # no image_root given


@pytest.mark.skipif(not IU_R2GEN_ANNOTATION.is_file(), reason="R2Gen split file not available")
def test_r2gen_split_mapping(iu: IUXRay) -> None:
    report = iu.split_match_report()
    assert {k: v["listed"] for k, v in report.items()} == {"train": 2069, "val": 296, "test": 590}
    assert all(v["matched"] == v["listed"] for v in report.values())
    # A handful of R2Gen ids name a different image series than the XML lists (7 of 2,069 in train).
    assert all(v["images_agree"] >= v["listed"] - 10 for v in report.values())
    counts = Counter(s.split for s in iu.studies())
    assert counts == {"train": 2069, "val": 296, "test": 590}
    test_ids = {s.id for s in iu.studies("test")}
    assert len(test_ids) == 590 and not test_ids & {s.id for s in iu.studies("train")}


@pytest.mark.skipif(not IU_R2GEN_ANNOTATION.is_file(), reason="R2Gen split file not available")
def test_labels_from_findings(iu: IUXRay) -> None:
    studies = iu.studies("train")
    assert all(s.labels is not None and tuple(s.labels) == CHEXPERT_LABELS for s in studies)
    positives = Counter(p for s in studies for p in s.positives)
    assert positives["No Finding"] > 1000
    assert positives["Cardiomegaly"] > 50 and positives["Pleural Effusion"] > 20


def test_hash_split_without_split_file() -> None:
    a = IUXRay(labeler=None)
    b = IUXRay(labeler=None)
    sa = {s.id: s.split for s in a.studies(labelled=False)}
    assert len(sa) == 3955  # nothing dropped without a split file
    assert sa == {s.id: s.split for s in b.studies(labelled=False)}
    share = Counter(sa.values())
    assert 0.65 < share["train"] / 3955 < 0.75 and 0.15 < share["test"] / 3955 < 0.25


def test_parse_xml_sections_and_images() -> None:
    xml = """<eCitation><uId id="CXR9"/><MedlineCitation><Article><Abstract>
      <AbstractText Label="FINDINGS">Invented   text
      over two lines.</AbstractText>
      <AbstractText Label="IMPRESSION">Invented impression.</AbstractText>
      <AbstractText Label="COMPARISON"/></Abstract></Article></MedlineCitation>
      <parentImage id="CXR9_IM-1-1001"/><parentImage id="CXR9_IM-1-2001"/></eCitation>"""
    report = parse_report_xml(xml)
    assert report.uid == "CXR9"
    assert report.sections["FINDINGS"] == "Invented text over two lines."
    assert report.sections["COMPARISON"] == "" and report.sections["INDICATION"] == ""
    assert report.image_ids == ["CXR9_IM-1-1001", "CXR9_IM-1-2001"]


def test_image_root_resolves_paths(tmp_path: Path, iu: IUXRay) -> None:
    first = iu.reports[0]
    (tmp_path / f"{first.image_ids[0]}.png").write_bytes(b"not read here")
    loader = IUXRay(image_root=tmp_path, labeler=None, split_file=None)
    study = next(s for s in loader.studies(labelled=False) if s.id == first.uid)
    assert study.images[0].path == tmp_path / f"{first.image_ids[0]}.png"
    assert all(im.path is None for im in study.images[1:])


def test_data_dir_found_without_import() -> None:
    import sys

    assert (torchxrayvision_data_dir() / "NLMCXR_reports.tgz").is_file()
    assert "torchxrayvision" not in sys.modules
