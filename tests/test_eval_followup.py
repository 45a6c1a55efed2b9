"""Text-only follow-up tasks (`text_correction`, `text_impression`) and the normal-report baseline.

Hand-written report texts here (never IU text); the end-to-end test reads IU reports from the
installed torchxrayvision package and skips when it or the R2Gen split file is absent.
"""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from data_paths import IU_R2GEN_ANNOTATION, REPO
from radialog.data.study import Study, StudyImage
from radialog.errors import InvalidInputError
from radialog.evaluation import EvalOptions, run_eval
from radialog.evaluation.baselines import BASELINES
from radialog.evaluation.followup import (
    ADD,
    REMOVE,
    CorrectionRequest,
    build_text_items,
    choose_correction,
    correction_outcome,
    detectable_labels,
    lora_is_identity,
    text_rg_prompt,
)
from radialog.evaluation.store import read_jsonl
from radialog.labeler import get_labeler
from radialog.labels import CHEXPERT_LABELS, NO_FINDING
from radialog.model.prompt import IMAGE_PLACEHOLDER, correction_prompt

torch.set_num_threads(1)

LABELER = get_labeler("rules")
REPORTS = {
    "a": "The heart is enlarged. There is a small right pleural effusion. No pneumothorax.",
    "b": "The lungs are clear. Heart size is normal. No pleural effusion or pneumothorax.",
    "c": "Mild pulmonary edema. Left basilar atelectasis. Heart size is normal.",
    "d": "No acute cardiopulmonary abnormality.",
}


def labels(text):
    return LABELER.label([text])[0].labels


def test_detectable_labels_are_those_the_labeler_reads_from_their_name():
    found = detectable_labels(LABELER)
    assert NO_FINDING not in found
    assert {"Cardiomegaly", "Pleural Effusion", "Edema", "Pneumothorax"} <= set(found)
    for name in found:
        assert labels(f"There is {name.lower()}.")[name] == 1
    # The rule labeler has no phrase for the label names below: they must never be requested.
    for name in set(CHEXPERT_LABELS) - set(found) - {NO_FINDING}:
        assert labels(f"There is {name.lower()}.")[name] != 1


def test_correction_choice_is_deterministic_and_valid():
    detectable = detectable_labels(LABELER)
    for sid, text in REPORTS.items():
        lab = labels(text)
        first = choose_correction(sid, lab, detectable, seed=1)
        assert first == choose_correction(sid, lab, detectable, seed=1)
        assert first.label in detectable
        if first.mode == REMOVE:
            assert lab[first.label] == 1
            assert first.prompt == correction_prompt([first.label], [])
            assert first.prompt.startswith("The patient does not have")
        else:
            assert lab[first.label] in (0, None)  # never an uncertain or present one
            assert first.prompt == correction_prompt([], [first.label])
            assert first.prompt.startswith("The patient also has")


def test_correction_choice_mixes_add_and_remove_over_studies_and_seeds():
    detectable = detectable_labels(LABELER)
    lab = labels(REPORTS["a"])  # cardiomegaly and effusion present: both modes possible
    modes = Counter(choose_correction(f"s{i}", lab, detectable, seed=0).mode for i in range(200))
    assert 60 < modes[REMOVE] < 140 and modes[ADD] == 200 - modes[REMOVE]
    # A normal report can only get an addition.
    normal = labels(REPORTS["b"])
    assert {choose_correction(f"s{i}", normal, detectable, 0).mode for i in range(30)} == {ADD}
    # Nothing detectable left to add or remove -> no request.
    assert choose_correction("x", normal, (), 0) is None


def _outcome(mode, label, before, after):
    req = CorrectionRequest(mode, label, "")
    return correction_outcome(req, LABELER.label([before])[0], LABELER.label([after])[0])


def test_scoring_of_hand_made_corrections():
    before = REPORTS["a"]
    # Removal that took effect, nothing else touched.
    ok = _outcome(REMOVE, "Pleural Effusion", before, "The heart is enlarged. No pneumothorax.")
    assert ok.took_effect and ok.unchanged and ok.success
    # Removal that also dropped cardiomegaly: took effect, but something else changed.
    greedy = _outcome(REMOVE, "Pleural Effusion", before, "No pneumothorax.")
    assert greedy.took_effect and not greedy.unchanged and not greedy.success
    assert "Cardiomegaly" in greedy.other_changes
    # The report unchanged: the request did not take effect.
    same = _outcome(REMOVE, "Pleural Effusion", before, before)
    assert not same.took_effect and same.unchanged and not same.success
    # Hedging is not a removal (uncertain still counts as present).
    hedge = _outcome(
        REMOVE,
        "Pleural Effusion",
        before,
        "The heart is enlarged. Possible small right pleural effusion. No pneumothorax.",
    )
    assert not hedge.took_effect
    # Addition to a normal report.
    add = _outcome(ADD, "Edema", REPORTS["b"], REPORTS["b"] + " There is mild pulmonary edema.")
    assert add.success
    # Addition that also invents a pneumothorax.
    extra = _outcome(ADD, "Edema", REPORTS["b"], "Mild pulmonary edema. Small pneumothorax.")
    assert extra.took_effect and not extra.unchanged
    assert extra.other_changes["Pneumothorax"][1] == "positive"


def test_text_prompt_has_no_image_placeholder_and_keeps_the_findings():
    prompt = text_rg_prompt(["Cardiomegaly", "Pleural Effusion"])
    assert IMAGE_PLACEHOLDER not in prompt
    assert prompt.startswith("Predicted Findings: cardiomegaly, pleural effusion.")
    assert text_rg_prompt([]).startswith("Predicted Findings: no common findings.")


def test_text_items_need_no_image():
    studies = [
        Study(id="x1", images=[], findings="Clear lungs.", impression="Normal."),
        Study(id="x2", images=[StudyImage(None, view="PA")], findings="", impression="Normal."),
    ]
    items = build_text_items(studies)
    assert [it.id for it in items] == ["x1"]
    assert items[0].image.path is None


@pytest.fixture(scope="module")
def tiny():
    from radialog.model import RadialogModel

    m = RadialogModel.from_config("tiny")
    m.eval()
    return m


def _studies():
    return [
        Study(
            id=sid, images=[], findings=text, impression="No acute disease." if sid != "c" else ""
        )
        for sid, text in REPORTS.items()
    ]


def _options(**kw):
    base = dict(
        tasks=("text_correction", "text_impression"),
        bertscore=False,
        meteor=False,
        n_bootstrap=20,
        batch_size=4,
        max_new_tokens={"text_correction": 4, "text_impression": 4},
    )
    base.update(kw)
    return EvalOptions(**base)


def test_untrained_model_is_the_base_llm(tiny):
    if lora_is_identity(tiny) is None:
        pytest.skip("the tiny config has no LoRA")
    assert lora_is_identity(tiny) is True
    name, p = next((n, p) for n, p in tiny.llm.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        p.add_(1.0)
    try:
        assert lora_is_identity(tiny) is False
    finally:
        with torch.no_grad():
            p.sub_(1.0)


def test_run_eval_text_tasks_with_the_tiny_model(tiny, tmp_path):
    result = run_eval(tiny, _studies(), tmp_path, _options(), model_name="tiny", dataset="hand")
    recs = read_jsonl(tmp_path / "predictions.jsonl")
    corr = [r for r in recs if r["task"] == "text_correction"]
    imp = [r for r in recs if r["task"] == "text_impression"]
    assert len(corr) == len(REPORTS)  # every hand-made report allows a request
    assert len(imp) == 3  # "c" has no impression
    for r in corr:
        assert IMAGE_PLACEHOLDER not in r["prompt"]
        assert r["prompt"].endswith(r["request"] + " ASSISTANT:")
        assert r["original"] in r["prompt"]
    tc = result["tasks"]["text_correction"]
    assert tc["n"] == 4 and sum(m["n"] for m in tc["by_mode"].values()) == 4
    for key in ("success_rate", "took_effect", "unchanged"):
        entry = tc["metrics"][key]
        assert 0.0 <= entry["value"] <= 1.0 and entry["ci_low"] <= entry["ci_high"]
    assert result["tasks"]["text_impression"]["n"] == 3
    assert "rg" not in result["tasks"]  # text tasks need no report generation
    assert result["run"]["lora_is_identity"] in (True, None)
    report = (tmp_path / "report.md").read_text()
    assert (
        "Correction of the real report" in report and "Impression from the real findings" in report
    )
    # Rerun: everything resumes from the store, nothing is generated twice.
    again = run_eval(tiny, _studies(), tmp_path, _options(), model_name="tiny", dataset="hand")
    assert len(read_jsonl(tmp_path / "predictions.jsonl")) == len(recs)
    assert again["tasks"]["text_correction"]["metrics"] == tc["metrics"]
    # Another seed changes the requests: refused in the same folder.
    with pytest.raises(InvalidInputError, match="text_seed"):
        run_eval(tiny, _studies(), tmp_path, _options(seed=7), model_name="tiny", dataset="hand")


def test_normal_baseline_writes_the_constant_report_without_model_or_images(tmp_path):
    studies = _studies()  # no images at all
    result = run_eval(
        None,
        studies,
        tmp_path,
        _options(tasks=("rg",), baseline="normal"),
        model_name="baseline-normal",
        dataset="hand",
    )
    recs = read_jsonl(tmp_path / "predictions.jsonl")
    assert [r["output"] for r in recs] == [BASELINES["normal"]] * len(studies)
    rg = result["tasks"]["rg"]
    assert rg["n"] == len(studies)
    # Only "b" and "d" are normal: the constant report is right on No Finding for those alone.
    assert 0.0 < rg["metrics"]["ce_radialog_uncertain_negative/f1_macro/14"]["value"] < 0.5
    with pytest.raises(InvalidInputError, match="rg"):
        _options(tasks=("text_correction",), baseline="normal").resolved_tasks()


@pytest.mark.slow  # the real IU test split through the CLI, with METEOR (Java)
@pytest.mark.skipif(not IU_R2GEN_ANNOTATION.is_file(), reason="R2Gen IU split file missing")
def test_cli_text_tasks_on_iu(tmp_path):
    from radialog.paths import package_dir

    if package_dir("torchxrayvision") is None:
        pytest.skip("torchxrayvision (IU report data) not installed")
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "radialog",
        "eval",
        "--model",
        "tiny",
        "--threads",
        "1",
        "--dataset",
        "iu",
        "--dataset-arg",
        f"split_file={IU_R2GEN_ANNOTATION}",
        "--tasks",
        "text_correction,text_impression",
        "--limit",
        "3",
        "--max-new-tokens",
        "4",
        "--no-bertscore",
        "--no-meteor",
        "--bootstrap",
        "20",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "text_correction (n=" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["n_text_items"] == 3
    assert metrics["tasks"]["text_correction"]["n"] >= 1
    assert metrics["run"]["max_new_tokens"]["text_correction"] == 4
    recs = read_jsonl(out / "predictions.jsonl")
    assert {r["task"] for r in recs} == {"text_correction", "text_impression"}
    assert all(IMAGE_PLACEHOLDER not in r["prompt"] for r in recs)
    assert Path(out / "report.md").is_file()
