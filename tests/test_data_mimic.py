"""MIMIC-CXR adapter end to end on the fake layout in tests/fixtures/mimic (invented text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radialog.data import load_dataset
from radialog.data.mimic import load_mimic
from radialog.data.sections import report_sections, split_sections
from radialog.errors import InvalidInputError

ROOT = Path(__file__).resolve().parent / "fixtures" / "mimic"


def test_studies_splits_views_and_images() -> None:
    studies = load_mimic(ROOT)
    # s50000006 has no report file and is skipped.
    assert [s.id for s in studies] == [
        "s50000001",
        "s50000002",
        "s50000003",
        "s50000004",
        "s50000005",
    ]
    by_id = {s.id: s for s in studies}
    assert by_id["s50000003"].split == "val"  # "validate" in the official file
    assert [im.view for im in by_id["s50000001"].images] == ["PA", "LATERAL"]
    assert [im.view for im in by_id["s50000003"].images] == ["PA", "LL"]
    assert by_id["s50000002"].frontal_image().view == "AP"
    for study in studies:
        for image in study.images:
            assert image.path is not None and image.path.is_file()
            assert image.path.relative_to(ROOT).parts[:3] == (
                "files",
                "p10",
                f"p{study.meta['subject_id']}",
            )


def test_sections() -> None:
    by_id = {s.id: s for s in load_mimic(ROOT)}
    s1 = by_id["s50000001"]
    assert s1.findings.startswith("The heart size is normal.")
    assert "\n" not in s1.findings and "  " not in s1.findings
    assert s1.impression == "No acute cardiopulmonary abnormality."
    assert s1.comparison == "None."
    assert s1.indication.endswith("dry cough for two weeks.")
    assert by_id["s50000004"].findings == ""
    assert by_id["s50000004"].impression.startswith("Stable 8 mm nodule")
    assert "2. Mild vascular congestion." in by_id["s50000002"].impression


def test_chexpert_labels_read_by_name() -> None:
    by_id = {s.id: s for s in load_mimic(ROOT)}
    s2 = by_id["s50000002"].labels
    assert s2["Cardiomegaly"] == 1 and s2["Edema"] == -1 and s2["Pneumothorax"] == 0
    assert s2["No Finding"] is None and s2["Support Devices"] == 1
    assert by_id["s50000001"].labels["No Finding"] == 1
    assert by_id["s50000001"].is_normal and not by_id["s50000002"].is_normal
    assert by_id["s50000005"].labels is None  # no row in the CheXpert CSV


def test_labeler_labels_findings() -> None:
    by_id = {s.id: s for s in load_mimic(ROOT, labels="labeler")}
    assert by_id["s50000005"].labels["Fracture"] == 1
    assert by_id["s50000005"].labels["Pneumothorax"] == 0
    assert by_id["s50000002"].labels["Pleural Effusion"] == 1
    assert by_id["s50000004"].labels is None  # no findings section to label
    assert by_id["s50000005"].meta["evidence"]["Fracture"]


def test_split_filter_and_registry() -> None:
    test = load_dataset("mimic", "test", root=ROOT)
    assert [s.id for s in test] == ["s50000004", "s50000005"]
    assert [s.id for s in load_dataset("mimic", "validate", root=ROOT)] == ["s50000003"]
    assert [s.id for s in load_mimic(ROOT, "train", require_findings=True)] == [
        "s50000001",
        "s50000002",
    ]
    with pytest.raises(InvalidInputError, match="root="):
        load_dataset("mimic", "train")
    with pytest.raises(InvalidInputError, match="split.csv"):
        load_mimic(ROOT / "files")


def test_section_parser_synonyms_and_fallback() -> None:
    text = "FINAL REPORT\n HISTORY: invented.\n\n FINDING:\n a b\n c.\n\n CONCLUSION:\n done.\n"
    sections = split_sections(text)
    assert sections["preamble"] == "FINAL REPORT"
    assert sections["findings"] == "a b c."
    assert report_sections(text) == {
        "findings": "a b c.",
        "impression": "done.",
        "indication": "invented.",
        "comparison": "",
    }
    # No findings and no impression: the last paragraph stands in for the impression.
    assert (
        report_sections("Some header\n\nFirst part.\n\nLast words here.")["impression"]
        == "Last words here."
    )
