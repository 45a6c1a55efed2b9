"""Instruct builder: determinism, task mix, context dropping, streaming, replay cache, CLI."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from radialog.data.instruct import (
    DROPPABLE,
    TASKS,
    InstructBuilder,
    InstructConfig,
    build_instruct,
)
from radialog.data.replay import PseudoLabeler
from radialog.data.study import Study, StudyImage
from radialog.labeler import get_labeler
from radialog.labeler.text import split_report_sentences
from radialog.labels import CHEXPERT_LABELS
from radialog.model.prompt import IMAGE_PLACEHOLDER

MIMIC = Path(__file__).resolve().parent / "fixtures" / "mimic"

# Invented sentences: (text, is it a finding).
NORMAL = [
    "The heart size is normal.",
    "The lungs are clear.",
    "There is no pleural effusion or pneumothorax.",
    "The mediastinal contours are unremarkable.",
    "No acute osseous abnormality is seen.",
]
ABNORMAL = [
    "The heart is markedly enlarged.",
    "There is a small left pleural effusion.",
    "A right-sided pneumothorax is present.",
    "There is patchy consolidation in the right lower lobe.",
    "A dual-lead pacemaker is in place.",
    "There is an acute fracture of a left rib.",
    "Moderate pulmonary edema is present.",
    "There is a 2 cm nodule in the left upper lobe.",
]


def synthetic_studies(n: int = 80, seed: int = 0) -> list[Study]:
    """Studies with invented reports, labelled by our labeler (so evidence sentences exist)."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        if i % 3 == 0:
            sentences = rng.sample(NORMAL, 3)
        else:
            sentences = rng.sample(ABNORMAL, rng.randint(1, 3)) + rng.sample(NORMAL[3:], 1)
        texts.append(" ".join(sentences))
    results = get_labeler("rules").label(texts)
    studies = []
    for i, (text, result) in enumerate(zip(texts, results, strict=True)):
        views = ["PA", "LATERAL"] if i % 2 else ["AP"]
        studies.append(
            Study(
                id=f"syn{i:03d}",
                images=[StudyImage(Path(f"img/syn{i:03d}_{v}.png"), v) for v in views],
                findings=text,
                impression="Invented impression." if i % 4 else "",
                labels=dict(result.labels),
                split="train",
            )
        )
    return studies


class FakeLLM:
    """Deterministic stand-in for the base LLM; can fail after a number of prompts."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.seen = 0
        self.fail_after = fail_after
        self.calls: list[int] = []

    def __call__(self, chats):  # noqa: ANN001
        if self.fail_after is not None and self.seen + len(chats) > self.fail_after:
            raise RuntimeError("injected failure")
        self.seen += len(chats)
        self.calls.append(len(chats))
        return [f"answer {len(c)} {sum(len(m['content']) for m in c)}" for c in chats]


@pytest.fixture(scope="module")
def studies() -> list[Study]:
    return synthetic_studies()


def build_bytes(studies: list[Study], path: Path, **config) -> bytes:  # noqa: ANN003
    replay = PseudoLabeler(FakeLLM(), "fake-1")
    build_instruct(studies, path, InstructConfig(**config), replay=replay)
    return path.read_bytes()


def test_deterministic_bytes(studies: list[Study], tmp_path: Path) -> None:
    a = build_bytes(studies, tmp_path / "a.jsonl", seed=3, size=400)
    b = build_bytes(studies, tmp_path / "b.jsonl", seed=3, size=400)
    c = build_bytes(studies, tmp_path / "c.jsonl", seed=4, size=400)
    assert a == b
    assert a != c
    assert len(a.splitlines()) == 400


def test_every_task_and_sample_format(studies: list[Study], tmp_path: Path) -> None:
    build_bytes(studies, tmp_path / "x.jsonl", seed=0, size=1500, correction_target="replay")
    samples = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert {s["task"] for s in samples} == set(TASKS)
    assert len({s["id"] for s in samples}) == len(samples)
    by_id = {s.id: s for s in studies}
    for s in samples:
        conv = s["conversations"]
        assert [t["from"] for t in conv] == ["human", "gpt"] * (len(conv) // 2)
        assert conv[-1]["value"]
        assert s["context"] in {"full", "partial", "none"}
        study = by_id[s["study"]]
        if s["context"] == "none":
            assert len(conv) == 2 and conv[0]["value"].startswith(IMAGE_PLACEHOLDER)
        elif s["task"] != "report":
            assert len(conv) == 4 and IMAGE_PLACEHOLDER in conv[0]["value"]
        if s["task"] == "binary_qa":
            label = next(n for n in study.labels if n.lower() in conv[-2]["value"].lower())
            assert conv[-1]["value"] == ("yes" if study.labels[label] == 1 else "no")
            assert study.labels[label] != -1
        if s["task"] == "view":
            view = conv[-1]["value"]
            assert any(im.view == view and str(im.path) == s["image"] for im in study.images)
        elif s["task"] != "view":
            assert s["image"] == str(study.frontal_image().path)
        if s["task"] == "reasoning":
            # The answer is made of sentences of the study's own report.
            assert all(part.strip(".") in study.findings for part in conv[-1]["value"].split(". "))
        if s["task"] == "report":
            assert conv[-1]["value"] == study.findings and s["context"] == "full"
        if s["task"] in {"easy_language", "summarize", "region_qa", "correction"}:
            assert s["source"] == "replay:fake-1" and conv[-1]["value"].startswith("answer")


def test_report_stratification(studies: list[Study], tmp_path: Path) -> None:
    builder = InstructBuilder(studies, InstructConfig(tasks=("report",), seed=1, size=6000))
    samples = list(builder.samples())
    assert len(samples) == 6000
    normal_ids = {s.id for s in studies if s.is_normal}
    normal_share = sum(s["study"] in normal_ids for s in samples) / len(samples)
    assert abs(normal_share - 1 / 14) < 0.02
    # Abnormal studies appear twice per pass.
    first_pass = [s for s in samples if s["id"].split(":")[2] == "0"]
    counts = Counter(s["study"] for s in first_pass if s["study"] not in normal_ids)
    assert set(counts.values()) == {2}
    keep_all = InstructBuilder(
        studies, InstructConfig(tasks=("report",), normal_fraction=1.0, abnormal_repeats=1)
    )
    assert len(list(keep_all.samples())) == len(studies)


def test_context_dropping_proportions(studies: list[Study]) -> None:
    config = InstructConfig(
        tasks=("binary_qa", "list_findings"), seed=2, size=4000, context_probs=(0.5, 0.3, 0.2)
    )
    samples = list(InstructBuilder(studies, config).samples())
    share = Counter(s["context"] for s in samples)
    assert abs(share["full"] / 4000 - 0.5) < 0.04
    assert abs(share["partial"] / 4000 - 0.3) < 0.04
    assert abs(share["none"] / 4000 - 0.2) < 0.04
    by_id = {s.id: s for s in studies}
    for s in samples:
        if s["context"] == "partial":
            # A proper, non-empty subset of the report's sentences, in their original order.
            sentences = split_report_sentences(by_id[s["study"]].findings)
            shown = split_report_sentences(s["conversations"][1]["value"])
            assert 0 < len(shown) < len(sentences)
            positions = [sentences.index(x) for x in shown]
            assert positions == sorted(positions)
    only_full = InstructBuilder(
        studies, InstructConfig(tasks=("binary_qa",), context_probs=(1, 0, 0))
    )
    assert {s["context"] for s in only_full.samples()} == {"full"}
    assert {"correction", "impression"}.isdisjoint(DROPPABLE)


def test_correction_is_consistent_with_labeler(studies: list[Study]) -> None:
    builder = InstructBuilder(studies, InstructConfig(tasks=("correction",), seed=5, size=150))
    samples = list(builder.samples())  # no replay model: the reference report is the answer
    assert len(samples) == 150
    labeler = get_labeler("rules")
    by_id = {s.id: s for s in studies}
    for s in samples:
        wrong, instruction, answer = (t["value"] for t in s["conversations"][1:])
        study = by_id[s["study"]]
        assert answer == study.findings and s["source"] == "reference" and wrong != study.findings
        true_pos = {n for n, v in labeler.label([study.findings])[0].labels.items() if v == 1}
        wrong_pos = {n for n, v in labeler.label([wrong])[0].labels.items() if v == 1}
        for missing in true_pos - wrong_pos - {"No Finding"}:
            assert missing.lower() in instruction.lower()
        for extra in wrong_pos - true_pos - {"No Finding"}:
            assert extra.lower() in instruction.lower()


def test_without_replay_model_replay_tasks_are_skipped(studies: list[Study]) -> None:
    samples = list(InstructBuilder(studies, InstructConfig(seed=0)).samples())
    tasks = {s["task"] for s in samples}
    assert {"easy_language", "summarize", "region_qa"}.isdisjoint(tasks)
    assert {"report", "correction", "binary_qa", "view"} <= tasks


def test_streaming_is_lazy(studies: list[Study]) -> None:
    llm = FakeLLM()
    replay = PseudoLabeler(llm, "fake", batch_size=4)
    builder = InstructBuilder(
        studies, InstructConfig(seed=0, size=10**9), replay=replay, replay_batch=4
    )
    stream = builder.samples()
    first = [next(stream) for _ in range(20)]
    assert len(first) == 20
    assert llm.seen <= 20  # generated only what the first samples needed, not 10^9


def test_replay_cache_resumes_after_failure(studies: list[Study], tmp_path: Path) -> None:
    cache = tmp_path / "cache.jsonl"
    config = InstructConfig(tasks=("easy_language", "summarize", "region_qa"), seed=7, size=60)
    reference = tmp_path / "ref.jsonl"
    full_run = FakeLLM()
    build_instruct(studies, reference, config, replay=PseudoLabeler(full_run, "fake"))
    # The stream resolves replay prompts in batches, so it may look a little past the size.
    assert 60 <= full_run.seen < 60 + 16

    failing = FakeLLM(fail_after=25)
    with pytest.raises(RuntimeError, match="injected"):
        build_instruct(
            studies, tmp_path / "out.jsonl", config, replay=PseudoLabeler(failing, "fake", cache, 4)
        )
    assert not (tmp_path / "out.jsonl").exists()  # no half-written output
    saved = len(cache.read_text().splitlines())
    assert saved == failing.seen and 0 < saved <= 25
    # Simulate a kill in the middle of a write: a torn last line is ignored.
    with cache.open("a") as handle:
        handle.write('{"key": "abc", "ans')

    resumed = FakeLLM()
    labeler = PseudoLabeler(resumed, "fake", cache, 4)
    assert len(labeler) == saved
    build_instruct(studies, tmp_path / "out.jsonl", config, replay=labeler)
    assert resumed.seen == full_run.seen - saved  # only the missing answers were generated
    assert (tmp_path / "out.jsonl").read_bytes() == reference.read_bytes()

    again = FakeLLM()
    build_instruct(
        studies, tmp_path / "out2.jsonl", config, replay=PseudoLabeler(again, "fake", cache, 4)
    )
    assert again.seen == 0
    # Another generator id never reuses these answers.
    other = FakeLLM()
    build_instruct(
        studies, tmp_path / "out3.jsonl", config, replay=PseudoLabeler(other, "other", cache, 4)
    )
    assert other.seen == full_run.seen


def test_cli_on_mimic_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from radialog.cli import main

    out = tmp_path / "ins"
    argv = [
        "build-instruct",
        "--dataset",
        "mimic",
        "--dataset-arg",
        f"root={MIMIC}",
        "--out",
        str(out),
    ]
    assert main([*argv, "--split", "train", "--size", "30", "--seed", "1"]) == 0
    lines = (out / "instruct.jsonl").read_text().splitlines()
    assert len(lines) == 30
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 30 and summary["studies"] == 2
    printed = capsys.readouterr().out
    assert "report" in printed and "binary_qa" in printed and "30" in printed
    first = json.loads(lines[0])
    assert first["image"].endswith(".jpg") and Path(first["image"]).is_file()
    assert main([*argv, "--tasks", "report,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main([*argv, "--context-probs", "1,2"]) == 2


def test_faithfulness_levers(studies: list[Study], tmp_path: Path) -> None:
    """Emphasis sentences, text-only samples, mismatched images and extra corrections."""
    from radialog.data.instruct import split_report_sentences

    plain = tmp_path / "plain.jsonl"
    build_bytes(studies, plain, seed=1, tasks=("report", "correction"))
    levers = tmp_path / "levers.jsonl"
    build_bytes(
        studies,
        levers,
        seed=1,
        tasks=("report", "correction"),
        text_only_prob=0.5,
        mismatch_image_prob=0.5,
        extra_tasks={"correction": 2},
    )
    base = [json.loads(x) for x in plain.read_text().splitlines()]
    rows = [json.loads(x) for x in levers.read_text().splitlines()]
    by_id = {s.id: s for s in studies}
    count = lambda xs, t: sum(r["task"] == t for r in xs)  # noqa: E731
    assert count(rows, "correction") > 2 * count(base, "correction")
    # Corrections answer with the true report (no replay edit) and emphasise what was lost.
    for r in (r for r in rows if r["task"] == "correction"):
        study = by_id[r["study"]]
        assert r["source"] == "reference" and r["conversations"][-1]["value"] == study.findings
        wrong = r["conversations"][1]["value"]
        assert all(e in study.findings and e not in wrong for e in r["emphasis"])
    reports = [r for r in rows if r["task"] == "report"]
    text = [r for r in reports if r["context"] == "text"]
    assert text and all(r["image"] is None for r in text)
    assert all(IMAGE_PLACEHOLDER not in r["conversations"][0]["value"] for r in text)
    assert all(r["conversations"][0]["value"].startswith("Predicted Findings:") for r in text)
    shown = [r for r in reports if r["image"]]
    foreign = [r for r in shown if r["image"] != str(by_id[r["study"]].frontal_image().path)]
    assert 0 < len(foreign) < len(shown)
    # Emphasis: whole sentences of the report that state one of its findings.
    for r in reports:
        sentences = split_report_sentences(r["conversations"][-1]["value"])
        assert all(e in sentences for e in r["emphasis"])
    assert any(r["emphasis"] for r in reports)
    assert all(not r["emphasis"] for r in reports if by_id[r["study"]].is_normal)


def test_lever_options_are_checked() -> None:
    with pytest.raises(ValueError, match="text_only_prob"):
        InstructConfig(text_only_prob=1.5)
    with pytest.raises(ValueError, match="extra_tasks"):
        InstructConfig(extra_tasks={"report": 1})


def test_findings_first_reorders_the_report_sentences(studies: list[Study], tmp_path: Path) -> None:
    from radialog.data.instruct import split_report_sentences

    out = tmp_path / "ff.jsonl"
    build_bytes(studies, out, seed=2, tasks=("report", "correction"), findings_first=True)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    by_id = {s.id: s for s in studies}
    moved = 0
    for r in rows:
        target = r["conversations"][-1]["value"]
        original = split_report_sentences(by_id[r["study"]].findings)
        assert sorted(split_report_sentences(target)) == sorted(original)
        if r["task"] == "report" and r["emphasis"]:
            assert split_report_sentences(target)[: len(r["emphasis"])] == r["emphasis"]
            moved += split_report_sentences(target) != original
    assert moved > 0


def _listed(prompt: str) -> set[str]:
    import re

    from radialog.labels import CHEXPERT_LABELS

    text = re.search(r"Predicted Findings: (.*?)\. You", prompt).group(1)
    names = {n.lower(): n for n in CHEXPERT_LABELS}
    return {names[x] for x in text.split(", ") if x in names}


def test_composed_reports_say_exactly_their_random_list(studies: list[Study]) -> None:
    labeler = get_labeler("rules")
    config = InstructConfig(
        tasks=("report",), seed=3, composed_reports=2, composed_image_prob=0.5, findings_first=True
    )
    rows = [s for s in InstructBuilder(studies, config).samples() if s["source"] == "composed"]
    assert len(rows) > len(studies)  # most draws succeed
    lists = Counter()
    for r in rows:
        prompt, target = (t["value"] for t in r["conversations"])
        listed = _listed(prompt) - {"No Finding"}
        said = {n for n, v in labeler.label([target])[0].labels.items() if v == 1}
        assert said - {"No Finding"} == listed, (prompt, target)
        # The finding sentences come first, one per listed label, and are the emphasis.
        assert split_report_sentences(target)[: len(listed)] == r["emphasis"]
        assert len(r["emphasis"]) == len(listed)
        if r["image"] is None:
            assert r["context"] == "text" and IMAGE_PLACEHOLDER not in prompt
        else:
            assert r["context"] == "full" and prompt.startswith(IMAGE_PLACEHOLDER)
        lists[len(listed)] += 1
    assert set(lists) >= {0, 1, 2}
    assert {r["image"] is None for r in rows} == {True, False}
    # Lists are drawn from every label that has a single-finding sentence, not the study's own.
    own = {r["study"]: None for r in rows}
    assert len(own) > 10
    drawn = Counter(n for r in rows for n in _listed(r["conversations"][0]["value"]))
    assert len(drawn) >= 6


def test_correction_can_list_the_wrong_reports_findings(studies: list[Study]) -> None:
    labeler = get_labeler("rules")
    config = InstructConfig(tasks=("correction",), seed=5, size=120, correction_wrong_list_prob=1.0)
    by_id = {s.id: s for s in studies}
    for s in InstructBuilder(studies, config).samples():
        prompt, wrong, instruction, answer = (t["value"] for t in s["conversations"])
        wrong_pos = {n for n, v in labeler.label([wrong])[0].labels.items() if v == 1}
        assert _listed(prompt) == wrong_pos  # the list the wrong report was written from
        assert answer == by_id[s["study"]].findings
    with pytest.raises(ValueError, match="correction_wrong_list_prob"):
        InstructConfig(correction_wrong_list_prob=2)
    with pytest.raises(ValueError, match="composed_reports"):
        InstructConfig(composed_reports=-1)


def test_composed_followups_correct_and_answer_from_the_list(studies: list[Study]) -> None:
    labeler = get_labeler("rules")
    config = InstructConfig(tasks=("report",), seed=4, composed_followups=3)
    rows = [s for s in InstructBuilder(studies, config).samples() if s["task"] != "report"]
    assert {r["task"] for r in rows} == {"correction", "binary_qa"}
    positives = lambda text: {  # noqa: E731
        n for n, v in labeler.label([text])[0].labels.items() if v == 1 and n != "No Finding"
    }
    dropped_negation = 0
    for r in rows:
        prompt, report, question, answer = (t["value"] for t in r["conversations"])
        before = positives(report)
        if r["task"] == "binary_qa":
            asked = next(n for n in CHEXPERT_LABELS[1:] if n.lower() in question.lower())
            assert answer == ("yes" if asked in _listed(prompt) else "no")
            continue
        after = positives(answer)
        # One label added or removed, nothing else changed, and the request names it.
        (changed,) = before ^ after
        assert changed.lower() in question.lower()
        kept = [s for s in split_report_sentences(report) if s in answer]
        assert len(kept) >= len(split_report_sentences(report)) - 2
        if changed in after:
            negated = labeler.label([report])[0].labels.get(changed) == 0
            dropped_negation += negated
            assert r["emphasis"] and all(e in answer and e not in report for e in r["emphasis"])
    assert dropped_negation > 0  # some additions replace a sentence that negated the finding


def test_composed_two_changes_long_lists_more_yes_and_clean_sentences(studies) -> None:
    from radialog.model.prompt import correction_prompt

    labeler = get_labeler("rules")
    positives = lambda text: {  # noqa: E731
        n for n, v in labeler.label([text])[0].labels.items() if v == 1 and n != "No Finding"
    }
    config = InstructConfig(
        tasks=("report",),
        seed=4,
        composed_reports=2,
        composed_followups=3,
        composed_list_sizes=(0, 0, 0, 1, 1),
        composed_followup_sizes=(0, 0, 0, 1),
        composed_yes_prob=1.0,
        composed_two_changes_prob=1.0,
        clean_finding_sentences=True,
    )
    rows = [s for s in InstructBuilder(studies, config).samples() if s["source"] == "composed"]
    sizes, changes = Counter(), Counter()
    for r in rows:
        turns = [t["value"] for t in r["conversations"]]
        if r["task"] == "report":
            sizes[len(_listed(turns[0]) - {"No Finding"})] += 1
            assert not any("XXXX" in e for e in r["emphasis"])
        elif r["task"] == "binary_qa":
            assert turns[3] == "yes" or not (_listed(turns[0]) - {"No Finding"})
        else:
            before, after = positives(turns[1]), positives(turns[3])
            assert len(before) == 3
            added, removed = sorted(after - before), sorted(before - after)
            changes[len(added) + len(removed)] += 1
            if len(added) + len(removed) == 2:  # asked in the repair's wording
                assert turns[2] == correction_prompt(removed, added)
    assert set(sizes) <= {3, 4} and sizes[3] and sizes[4]
    assert changes[2] > changes[1]
    with pytest.raises(ValueError, match="composed_list_sizes"):
        InstructConfig(composed_list_sizes=(0, 0))
    with pytest.raises(ValueError, match="composed_yes_prob"):
        InstructConfig(composed_yes_prob=1.5)


def test_dataset_args_are_typed_the_same_for_every_command() -> None:
    from radialog.commands.options import dataset_kwargs
    from radialog.errors import InvalidInputError

    parsed = dataset_kwargs(["size=288", "root=/data/mimic", "require_findings=False", "x=none"])
    assert parsed == {"size": 288, "root": "/data/mimic", "require_findings": False, "x": None}
    with pytest.raises(InvalidInputError, match="KEY=VALUE"):
        dataset_kwargs(["size"])
