"""RaDialog's downstream-task rules on hand-made cases, and the crash-safe prediction store."""

import json

import pytest

from radialog.evaluation.parsing import (
    CorrectionSets,
    binarize,
    correction_instruction,
    correction_sets,
    normalize_view,
    parse_binary_answers,
    parse_list_answer,
    parse_view,
)
from radialog.evaluation.store import PredictionStore, read_jsonl
from radialog.fileio import atomic_write_json
from radialog.labels import CHEXPERT_LABELS


def labels(**values):
    named = {name.replace(" ", "_"): name for name in CHEXPERT_LABELS}
    out = {name: None for name in CHEXPERT_LABELS}
    for key, value in values.items():
        out[named[key]] = value
    return out


def test_binarize_counts_uncertain_and_blank_as_negative():
    b = binarize(labels(Edema=1, Cardiomegaly=-1, Atelectasis=0))
    assert b["Edema"] == 1 and b["Cardiomegaly"] == 0 and b["Atelectasis"] == 0
    assert b["Pneumonia"] == 0 and list(b) == list(CHEXPERT_LABELS)


def test_correction_sets_fp_fn_without_no_finding():
    pred = labels(No_Finding=1, Edema=1, Pleural_Effusion=1, Cardiomegaly=-1)
    ref = labels(Cardiomegaly=1, Pleural_Effusion=1, Atelectasis=1)
    sets = correction_sets(pred, ref)
    assert sets.false_positives == ("Edema",)
    # canonical order: Cardiomegaly before Atelectasis; uncertain prediction is a miss
    assert sets.false_negatives == ("Cardiomegaly", "Atelectasis")


def test_correction_instruction_all_four_cases():
    both = CorrectionSets(("Edema", "Fracture"), ("Cardiomegaly", "Lung Opacity", "Atelectasis"))
    assert correction_instruction(both) == (
        "Please adapt the report with the following corrections: Include cardiomegaly, "
        "lung opacity and atelectasis and remove edema and fracture. Don't make other changes."
    )
    assert correction_instruction(CorrectionSets(("Edema",), ())) == (
        "The patient does not have edema. Update the report. Don't make other changes."
    )
    assert correction_instruction(CorrectionSets((), ("Pneumothorax",))) == (
        "The patient also has pneumothorax, correct the report. Don't make other changes."
    )
    # Only No Finding differs: nothing to correct -> KEEP_OLD (None)
    sets = correction_sets(labels(No_Finding=1), labels())
    assert sets.empty and correction_instruction(sets) is None


def test_binary_answers_yes_substring_and_no_finding_override():
    answers = {name: "No." for name in CHEXPERT_LABELS}
    answers["Edema"] = "Yes, there is mild edema."
    answers["Cardiomegaly"] = "YES"
    answers["No Finding"] = "Yes, the exam is normal."  # overridden: other labels are positive
    out = parse_binary_answers(answers)
    assert out["Edema"] == 1 and out["Cardiomegaly"] == 1
    assert out["No Finding"] == 0 and out["Atelectasis"] == 0
    # all negative -> No Finding = 1 even if the model said no
    out = parse_binary_answers({name: "no" for name in CHEXPERT_LABELS})
    assert out["No Finding"] == 1 and sum(out.values()) == 1
    # a missing answer counts as no
    assert parse_binary_answers({})["Edema"] == 0


def test_list_answer_substring_matching():
    out = parse_list_answer("Findings: Cardiomegaly, small pleural effusion and support devices.")
    assert out["Cardiomegaly"] == 1
    assert out["Pleural Effusion"] == 1
    assert out["Support Devices"] == 1
    assert out["Edema"] == 0 and out["No Finding"] == 0
    assert parse_list_answer("no finding")["No Finding"] == 1


@pytest.mark.parametrize(
    ("answer", "view"),
    [
        ("The image was taken from a PA view.", "PA"),
        ("This is an AP radiograph", "AP"),
        ("lateral view", "LATERAL"),
        ("It is a left lateral (LL) image", "LATERAL"),
        ("LL", "LL"),
        ("PA.", "PA"),
        ("a papillary pattern", "unknown"),
        ("", "unknown"),
    ],
)
def test_parse_view(answer, view):
    assert parse_view(answer) == view


def test_normalize_view():
    assert normalize_view("pa") == "PA"
    assert normalize_view("LATERAL") == "LATERAL"
    assert normalize_view("AP AXIAL") is None
    assert normalize_view(None) is None


def test_store_resumes_and_ignores_truncated_last_line(tmp_path):
    path = tmp_path / "p.jsonl"
    store = PredictionStore(path)
    store.append([{"key": "rg/a", "task": "rg", "output": "x"}, {"key": "rg/b", "task": "rg"}])
    # a crash in the middle of the next line
    with open(path, "ab") as fh:
        fh.write(b'{"key": "rg/c", "task": "r')
    assert [r["key"] for r in read_jsonl(path)] == ["rg/a", "rg/b"]
    store = PredictionStore(path)
    assert "rg/a" in store and "rg/b" in store and "rg/c" not in store
    store.append([{"key": "rg/a", "task": "rg", "output": "dup"}, {"key": "rg/c", "task": "rg"}])
    lines = path.read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["rg/a", "rg/b", "rg/c"]
    assert store.get("rg/a")["output"] == "x"


def test_store_rejects_corruption_before_the_last_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match="not the last"):
        PredictionStore(path)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
