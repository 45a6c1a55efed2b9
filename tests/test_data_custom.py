"""Bring-your-own-data CSV/JSONL loader, validator and the dataset registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radialog.data import load_dataset
from radialog.data.custom import load_custom, validate_custom
from radialog.errors import InvalidInputError


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / "img" / name).write_bytes(b"x")
    return tmp_path


def test_valid_csv_groups_images_and_reads_labels(images: Path) -> None:
    path = images / "data.csv"
    path.write_text(
        "id,image,findings,impression,view,split,Cardiomegaly,pleural effusion\n"
        "s1,img/a.png,Heart is big.,Cardiomegaly.,PA,train,1,\n"
        "s1,img/b.png,Heart is big.,Cardiomegaly.,lateral,train,1,\n"
        "s2,img/c.png,Clear lungs.,,AP,validate,0,-1.0\n"
    )
    assert validate_custom(path) == []
    studies = load_custom(path)
    assert [s.id for s in studies] == ["s1", "s2"]
    s1, s2 = studies
    assert [im.view for im in s1.images] == ["PA", "LATERAL"]
    assert s1.images[1].path == images / "img" / "b.png"
    assert s1.labels["Cardiomegaly"] == 1 and s1.labels["Pleural Effusion"] is None
    assert s2.split == "val" and s2.labels["Pleural Effusion"] == -1
    assert [s.id for s in load_dataset("custom", "val", path=path)] == ["s2"]


def test_validator_names_row_and_problem(images: Path) -> None:
    path = images / "bad.csv"
    path.write_text(
        "id,image,findings,impression,view,split,Edema,colour\n"
        "s1,img/a.png,ok.,,PA,train,1,\n"  # unknown column 'colour' (reported per row)
        ",img/b.png,ok.,,PA,train,,\n"
        "s3,img/missing.png,ok.,,PA,train,,\n"
        "s4,img/c.png,ok.,,SIDEWAYS,train,,\n"
        "s5,img/c.png,ok.,,PA,holdout,,\n"
        "s6,img/c.png,ok.,,PA,train,2,\n"
        "s7,img/c.png,,,PA,train,,\n"
    )
    problems = validate_custom(path)
    text = "\n".join(problems)
    assert "row 2: unknown column(s) colour" in text
    assert "row 3: empty 'id'" in text
    assert "row 4: image file not found" in text and "missing.png" in text
    assert "row 5: unknown view 'SIDEWAYS'" in text
    assert "row 6: unknown split 'holdout'" in text
    assert "row 7: column 'Edema' has '2'" in text
    assert "row 8: study 's7' has neither findings nor impression" in text
    with pytest.raises(InvalidInputError, match=r"row 6: unknown split"):
        load_custom(path)


def test_missing_required_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,findings\ns1,ok\n")
    assert validate_custom(path) == ["row 1 (header): missing column(s) image"]


def test_jsonl_and_conflicting_rows(images: Path) -> None:
    path = images / "data.jsonl"
    rows = [
        {"id": "s1", "image": "img/a.png", "findings": "One.", "Fracture": 1},
        {"id": "s1", "image": "img/b.png", "findings": "Two."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    problems = validate_custom(path)
    assert "row 2: findings differs from row 1 of study 's1'" in problems
    assert any(p.startswith("row 3: not valid JSON") for p in problems)
    path.write_text(json.dumps(rows[0]) + "\n")
    (study,) = load_custom(path)
    assert study.labels["Fracture"] == 1 and study.labels["Edema"] is None


def test_labeler_fills_missing_labels(images: Path) -> None:
    path = images / "d.csv"
    path.write_text("id,image,findings\ns1,img/a.png,There is a small left pleural effusion.\n")
    (study,) = load_custom(path, labeler="rules")
    assert study.labels["Pleural Effusion"] == 1


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(InvalidInputError) as info:
        load_dataset("chexpertplus")
    for name in ("iu", "mimic", "phantom-iu", "custom"):
        assert name in str(info.value)
    with pytest.raises(InvalidInputError, match="unexpected keyword"):
        load_dataset("custom", path="x.csv", colour="red")
