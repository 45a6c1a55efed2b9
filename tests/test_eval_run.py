"""`radialog eval` end to end with the tiny random model: files, resume after a crash, --compare.

Reports of a random model are gibberish, so these tests check structure and bookkeeping (every
prompt recorded once, metrics with CIs and conventions, tables, resumability), not quality.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radialog.data.study import Study, StudyImage
from radialog.evaluation import TASKS, EvalOptions, compare_runs, run_eval
from radialog.evaluation.generation import MAX_NEW_TOKENS
from radialog.evaluation.prompts import image_only_report_prompt
from radialog.evaluation.store import read_jsonl
from radialog.imaging.phantom import render_phantom
from radialog.labels import CHEXPERT_LABELS
from radialog.metrics import RADIALOG_CE

torch.set_num_threads(1)

FIXTURE_MIMIC = Path(__file__).resolve().parent / "fixtures" / "mimic"
SHORT = dict.fromkeys(MAX_NEW_TOKENS, 4)  # keep generation short: the model is random

# Hand-written studies (not IU text): findings, impression, view.
CASES = [
    (
        "s1",
        ["Cardiomegaly", "Pleural Effusion"],
        "PA",
        "The heart is enlarged. There is a small right pleural effusion. No pneumothorax.",
        "Cardiomegaly with a small right effusion.",
    ),
    (
        "s2",
        ["No Finding"],
        "AP",
        "The lungs are clear. The heart size is normal. No pleural effusion or pneumothorax.",
        "No acute cardiopulmonary process.",
    ),
    (
        "s3",
        ["Atelectasis"],
        "PA",
        "There is mild left basilar atelectasis. No focal consolidation.",
        "",
    ),  # no impression: not part of the impression task
    (
        "s4",
        ["Edema"],
        "LATERAL",
        "Mild pulmonary edema. Heart size is normal.",
        "Mild pulmonary edema.",
    ),
]


@pytest.fixture(scope="module")
def model():
    from radialog.model import RadialogModel

    m = RadialogModel.from_config("tiny")
    m.eval()
    return m


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    out = []
    for i, (sid, drawn, view, findings, impression) in enumerate(CASES):
        path = folder / f"{sid}.png"
        Image.fromarray(render_phantom(drawn, seed=i, size=96, view="PA")).save(path)
        out.append(
            Study(
                id=sid,
                images=[StudyImage(path, view=view, image_id=sid)],
                findings=findings,
                impression=impression,
                split="test",
            )
        )
    return out


def options(**kw):
    base = dict(
        tasks=("rg",),
        bertscore=False,
        meteor=False,
        n_bootstrap=20,
        batch_size=4,
        max_new_tokens=dict(SHORT),
    )
    base.update(kw)
    return EvalOptions(**base)


def keys(path):
    return [r["key"] for r in read_jsonl(path)]


@pytest.fixture(scope="module")
def full_run(model, studies, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    result = run_eval(
        model,
        studies,
        out,
        options(tasks=TASKS),
        model_name="tiny",
        dataset="handmade",
        split="test",
    )
    return out, result


def test_run_writes_every_file(full_run):
    out, result = full_run
    assert {p.name for p in out.iterdir()} >= {
        "run.json",
        "predictions.jsonl",
        "metrics.json",
        "report.md",
        "per_label_f1.png",
    }
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(result))
    with Image.open(out / "per_label_f1.png") as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_predictions_have_one_record_per_prompt(full_run, studies):
    out, _ = full_run
    recs = read_jsonl(out / "predictions.jsonl")
    ks = [r["key"] for r in recs]
    assert len(ks) == len(set(ks))
    by_task = {}
    for r in recs:
        assert {"key", "task", "id", "prompt", "output"} <= set(r)
        by_task.setdefault(r["task"], []).append(r)
    n = len(studies)
    assert len(by_task["rg"]) == n
    assert len(by_task["correction"]) == n
    assert len(by_task["binary_qa"]) == 14 * n
    assert len(by_task["all_qa"]) == n
    assert len(by_task["impression"]) == 3  # s3 has no impression
    assert len(by_task["view"]) == n
    rg = {r["id"]: r for r in by_task["rg"]}
    for r in by_task["rg"]:
        assert "Predicted Findings: " in r["prompt"] and r["prompt"].endswith("ASSISTANT:")
        assert set(r["probabilities"]) == set(CHEXPERT_LABELS)
        assert r["reference"] == next(s.findings for s in studies if s.id == r["id"])
    for r in by_task["binary_qa"]:
        # the question follows the generated report, verbatim RaDialog wording
        assert r["prompt"].endswith(f"USER:  Is there any {r['label']}? ASSISTANT:")
        assert f"ASSISTANT: {rg[r['id']]['output']}</s>USER:" in r["prompt"]
    for r in by_task["correction"]:
        if r["prompt"] == "KEEP_OLD":
            assert (
                r["output"] == r["original"]
                and not r["false_positives"]
                and not r["false_negatives"]
            )
        else:
            assert r["false_positives"] or r["false_negatives"]
            assert "Don't make other changes. ASSISTANT:" in r["prompt"]
    for r in by_task["impression"]:
        study = next(s for s in studies if s.id == r["id"])
        assert f"ASSISTANT: {study.findings}</s>USER: Write the impression section" in r["prompt"]
        assert r["reference"] == study.impression
    assert {r["reference"] for r in by_task["view"]} == {"PA", "AP", "LATERAL"}


def test_metrics_have_value_ci_and_convention(full_run):
    _, result = full_run
    tasks = result["tasks"]
    assert set(tasks) == {"rg", "correction", "binary_qa", "all_qa", "impression", "view"}
    entries = [
        tasks["rg"]["metrics"][RADIALOG_CE],
        tasks["rg"]["metrics"]["rouge_l"],
        tasks["correction"]["after"]["metrics"][RADIALOG_CE],
        tasks["binary_qa"]["metrics"]["macro_f1"],
        tasks["all_qa"]["metrics"]["macro_f1"],
        tasks["impression"]["metrics"]["rouge_l"],
        tasks["view"]["metrics"]["accuracy"],
        tasks["view"]["metrics"]["macro_f1"],
    ]
    for e in entries:
        assert set(e) >= {"value", "ci_low", "ci_high", "convention"} and e["convention"]
        assert e["ci_low"] <= e["value"] + 1e-9 and e["value"] <= e["ci_high"] + 1e-9
    assert tasks["impression"]["n"] == 3 and tasks["view"]["n"] == 4
    assert tasks["correction"]["delta_ce"]["convention"].startswith("CE after - CE before")
    assert set(tasks["rg"]["per_label_f1"]) == set(CHEXPERT_LABELS)
    assert {"CE", "BS", "items", "prompt", "bootstrap", "view"} <= set(result["conventions"])


def test_metrics_agree_with_predictions(full_run):
    """Recompute view accuracy and the QA No-Finding rule from the records themselves."""
    from radialog.evaluation.parsing import parse_binary_answers, parse_view

    out, result = full_run
    recs = read_jsonl(out / "predictions.jsonl")
    views = [r for r in recs if r["task"] == "view"]
    acc = np.mean([parse_view(r["output"]) == r["reference"] for r in views])
    assert result["tasks"]["view"]["metrics"]["accuracy"]["value"] == pytest.approx(acc)
    answers = {
        r["label"]: r["output"] for r in recs if r["task"] == "binary_qa" and r["id"] == "s1"
    }
    parsed = parse_binary_answers(answers)
    assert parsed["No Finding"] == int(not any(v for k, v in parsed.items() if k != "No Finding"))


def test_report_md_tables(full_run):
    out, _ = full_run
    md = (out / "report.md").read_text()
    assert "| Model | CE | BS | B-1 | B-4 | MTR | R-L |" in md
    row = next(line for line in md.splitlines() if line.startswith("| tiny |"))
    assert row.count("|") == 8 and "[" in row  # values with CIs
    assert "## Downstream tasks" in md
    for title in (
        "Report correction",
        "Findings QA (binary)",
        "Findings QA (list all)",
        "Impression generation",
        "View classification",
    ):
        assert f"| {title} |" in md
    assert "## Per-label F1" in md and "| Pleural Effusion |" in md
    assert "![per-label F1](per_label_f1.png)" in md


class Crash(RuntimeError):
    pass


class CrashingModel:
    """Delegates to the real model but raises after `calls` generation calls (a killed run)."""

    def __init__(self, model, calls):
        self._model, self._left = model, calls

    def analyse_image(self, image):
        return self._model.analyse_image(image)

    def generate_batch(self, *args, **kwargs):
        if self._left == 0:
            raise Crash("simulated kill")
        self._left -= 1
        return self._model.generate_batch(*args, **kwargs)


def test_resume_after_crash_matches_uninterrupted_run(model, studies, tmp_path):
    tasks = ("rg", "correction", "view")
    opts = options(tasks=tasks, batch_size=1)
    clean = tmp_path / "clean"
    expected = run_eval(
        model, studies, clean, opts, model_name="tiny", dataset="handmade", split="test"
    )

    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        run_eval(
            CrashingModel(model, 5),
            studies,
            out,
            opts,
            model_name="tiny",
            dataset="handmade",
            split="test",
        )
    partial = read_jsonl(out / "predictions.jsonl")
    # 5 generated records, plus KEEP_OLD corrections (no generation) written before the crash
    assert sum(r["prompt"] != "KEEP_OLD" for r in partial) == 5
    assert len(partial) < len(keys(clean / "predictions.jsonl"))
    assert not (out / "metrics.json").exists()
    with open(out / "predictions.jsonl", "ab") as fh:  # killed in the middle of a write
        fh.write(b'{"key": "view/s1", "task": "view", "out')
    result = run_eval(
        model, studies, out, opts, model_name="tiny", dataset="handmade", split="test"
    )

    ks = keys(out / "predictions.jsonl")
    assert len(ks) == len(set(ks)) == len(keys(clean / "predictions.jsonl"))
    by_key = {r["key"]: r for r in read_jsonl(clean / "predictions.jsonl")}
    for r in read_jsonl(out / "predictions.jsonl"):
        assert r == by_key[r["key"]]
    assert result["tasks"] == expected["tasks"]
    assert (out / "report.md").read_text() == (clean / "report.md").read_text()


def test_resume_refuses_a_different_run(model, studies, tmp_path):
    from radialog.errors import InvalidInputError

    run_eval(
        model, studies[:1], tmp_path, options(), model_name="tiny", dataset="handmade", split="test"
    )
    with pytest.raises(InvalidInputError, match="use_findings"):
        run_eval(
            model,
            studies[:1],
            tmp_path,
            options(use_findings=False),
            model_name="tiny",
            dataset="handmade",
            split="test",
        )


def test_no_findings_prompt_and_compare(model, studies, tmp_path, full_run):
    a, _ = full_run
    b = tmp_path / "nofind"
    run_eval(
        model,
        studies,
        b,
        options(tasks=("rg", "binary_qa", "view"), use_findings=False),
        model_name="tiny",
        dataset="handmade",
        split="test",
    )
    rg = [r for r in read_jsonl(b / "predictions.jsonl") if r["task"] == "rg"]
    assert all(
        "Predicted Findings" not in r["prompt"] and "predicted findings" not in r["prompt"]
        for r in rg
    )
    assert all(r["user_turn"] == image_only_report_prompt() for r in rg)

    result = compare_runs(a, b, out=tmp_path / "cmp", n_bootstrap=30, bertscore=False, meteor=False)
    assert result["n"] == len(studies)
    labels = [row["label"] for row in result["metrics"]]
    assert (
        "RG CE" in labels
        and "RG R-L" in labels
        and "Binary QA F1" in labels
        and "View accuracy" in labels
    )
    assert "Correction CE after" not in labels  # run B has no correction task
    for row in result["metrics"]:
        assert row["delta"] == pytest.approx(row["b"] - row["a"])
        assert 0 < row["p_value"] <= 1
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| Metric | A | B | B − A | 95% CI of B − A | p |" in md
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["n"] == len(studies)


def test_identical_runs_compare_to_zero(full_run, tmp_path):
    a, _ = full_run
    result = compare_runs(
        a, a, out=tmp_path / "same", n_bootstrap=20, bertscore=False, meteor=False
    )
    for row in result["metrics"]:
        assert row["delta"] == 0 and row["ci"] == [0, 0]


@pytest.mark.skipif(not FIXTURE_MIMIC.is_dir(), reason="MIMIC fixture missing")
def test_cli_on_mimic_fixture(model, tmp_path, monkeypatch, capsys):
    """The MIMIC path: findings section as reference, every image counts, views from metadata;
    BERTScore on (2 texts)."""
    import radialog.commands.options as common
    from radialog.cli import main

    monkeypatch.setattr(common, "load_model", lambda args: model)
    out = tmp_path / "mimic"
    argv = [
        "eval",
        "--model",
        "tiny",
        "--dataset",
        "mimic",
        "--dataset-arg",
        f"root={FIXTURE_MIMIC}",
        "--split",
        "test",
        "--tasks",
        "rg,view",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--max-new-tokens",
        "4",
        "--bootstrap",
        "20",
    ]
    argv.append("--no-meteor")  # the JVM start costs ~20 s; METEOR has its own tests in metrics
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    result = json.loads((out / "metrics.json").read_text())
    recs = read_jsonl(out / "predictions.jsonl")
    rg = [r for r in recs if r["task"] == "rg"]
    # test split: s50000004 has no findings section (excluded); s50000005 has two images
    assert sorted(r["id"] for r in rg) == [
        "s50000005/cccc0005-frontal",
        "s50000005/cccc0005-lateral",
    ]
    assert all("IMPRESSION" not in r["reference"] and r["reference"] for r in rg)
    assert sorted(r["reference"] for r in recs if r["task"] == "view") == ["AP", "LATERAL"]
    assert result["run"]["images"] == "all"
    assert result["tasks"]["rg"]["metrics"]["bertscore_f1"]["value"] is not None
    md = (out / "report.md").read_text()
    assert "| tiny | " in md


def test_cli_user_errors(tmp_path, capsys):
    from radialog.cli import main

    assert main(["eval", "--tasks", "rg,nonsense", "--out", str(tmp_path)]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["eval", "--compare", str(tmp_path / "x"), str(tmp_path / "y")]) == 2
    assert "not a `radialog eval` run folder" in capsys.readouterr().err


def test_items_skip_missing_images_and_studies_without_findings(studies, tmp_path):
    from radialog.evaluation.items import build_items

    extra = [
        Study(
            id="nofile",
            images=[StudyImage(tmp_path / "absent.png", view="PA")],
            findings="Clear lungs.",
        ),
        Study(id="nofindings", images=studies[0].images, findings="  ", impression="Normal."),
        Study(
            id="two", images=[studies[0].images[0], studies[1].images[0]], findings="Clear  lungs."
        ),
    ]
    frontal = build_items(extra, images="frontal")
    assert [it.id for it in frontal] == ["two"] and frontal[0].findings == "Clear lungs."
    both = build_items(extra, images="all")
    assert [it.id for it in both] == ["two/s1", "two/s2"]
    assert [it.view for it in both] == ["PA", "AP"]
