"""`radialog label`: CSV and JSONL input, CSV output, clear errors for malformed input."""

from __future__ import annotations

import csv
import json

import pytest

from radialog.cli import main
from radialog.labels import CHEXPERT_LABELS

REPORTS = [
    ("r1", "Mild cardiomegaly. No pleural effusion."),
    ("r2", "Possible right lower lobe pneumonia."),
    ("r3", "No acute cardiopulmonary abnormality."),
]


def read_out(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def check_rows(rows):
    assert [r["id"] for r in rows] == ["r1", "r2", "r3"]
    assert list(rows[0])[: 1 + len(CHEXPERT_LABELS)] == ["id", *CHEXPERT_LABELS]
    assert rows[0]["Cardiomegaly"] == "1" and rows[0]["Pleural Effusion"] == "0"
    assert rows[0]["Edema"] == "" and rows[0]["No Finding"] == ""
    assert rows[1]["Pneumonia"] == "-1"
    assert rows[2]["No Finding"] == "1"


def test_csv_in_csv_out_with_evidence(tmp_path):
    src = tmp_path / "reports.csv"
    with src.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows(REPORTS)
    out = tmp_path / "labels.csv"
    assert main(["label", str(src), "--out", str(out), "--evidence"]) == 0
    rows = read_out(out)
    check_rows(rows)
    evidence = json.loads(rows[0]["evidence"])
    assert evidence["Cardiomegaly"] == ["Mild cardiomegaly."]


def test_jsonl_to_stdout(tmp_path, capsys):
    src = tmp_path / "reports.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "text": t}) for i, t in REPORTS) + "\n\n")
    assert main(["label", str(src)]) == 0
    out = tmp_path / "stdout.csv"
    out.write_text(capsys.readouterr().out)
    rows = read_out(out)
    check_rows(rows)
    assert "evidence" not in rows[0]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("a.csv", "id,report\nr1,No effusion.\n", "missing column(s) text"),
        (
            "b.csv",
            'id,text\nr1,"No effusion."\n,"Mild cardiomegaly."\n',
            "line 3 has an empty 'id'",
        ),
        (
            "c.jsonl",
            '{"id": "r1", "text": "ok"}\n{"id": "r2", "text": \n',
            "line 2 is not valid JSON",
        ),
        ("d.jsonl", '{"text": "No effusion."}\n', "line 1 has no 'id'"),
        ("e.jsonl", '["r1", "text"]\n', "line 1 must be a JSON object"),
    ],
)
def test_malformed_input_names_the_row(tmp_path, capsys, name, content, message):
    src = tmp_path / name
    src.write_text(content)
    assert main(["label", str(src)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_file_and_unknown_labeler(tmp_path, capsys):
    assert main(["label", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    src = tmp_path / "r.csv"
    src.write_text("id,text\nr1,No effusion.\n")
    assert main(["label", str(src), "--labeler", "bogus"]) == 2
    assert "unknown labeler" in capsys.readouterr().err
