"""The report checks itself: consistency block and the automatic repair turn."""

from __future__ import annotations

import numpy as np
import pytest

from radialog.consistency import check_report, default_labeler, repair_instruction
from radialog.model import RadialogModel
from radialog.model.prompt import Conversation


@pytest.fixture(scope="module")
def labeler():
    return default_labeler()


def test_check_lists_stated_omitted_and_unsupported_with_evidence(labeler):
    report = (
        "The heart is enlarged. There is a small right pleural effusion. "
        "No pneumothorax. The lungs are otherwise clear."
    )
    check = check_report(report, ["Cardiomegaly", "Edema", "No Finding"], labeler)
    assert check.listed == ["Cardiomegaly", "Edema"]  # No Finding is not a listed finding
    assert [s.label for s in check.stated] == ["Cardiomegaly"]
    assert check.stated[0].evidence and "enlarged" in check.stated[0].evidence[0].lower()
    assert [s.label for s in check.omitted] == ["Edema"]
    assert [s.label for s in check.unsupported] == ["Pleural Effusion"]
    assert "effusion" in check.unsupported[0].evidence[0].lower()
    assert not check.consistent and check.mismatches == 2
    block = check.to_dict()
    assert block["consistent"] is False
    assert block["unsupported"][0]["label"] == "Pleural Effusion"
    request = repair_instruction(check)
    assert "Include edema and remove pleural effusion" in request


def test_negated_listed_finding_counts_as_omitted(labeler):
    check = check_report("There is no pleural effusion.", ["Pleural Effusion"], labeler)
    assert [s.label for s in check.omitted] == ["Pleural Effusion"]
    assert not check.unsupported


def test_normal_report_for_empty_list_is_consistent(labeler):
    check = check_report("The heart is normal in size. The lungs are clear.", [], labeler)
    assert check.consistent and repair_instruction(check) is None
    assert "consistent" in check.summary()


@pytest.fixture(scope="module")
def tiny():
    model = RadialogModel.from_config("tiny")
    model.predicted_labels = lambda probs: ["Cardiomegaly"]  # a fixed findings list
    return model


def _scripted(model, monkeypatch, answers):
    """The LLM's replies, in order (the repair logic is under test, not the tiny LLM)."""
    asked: list[Conversation] = []
    replies = iter(answers)

    def generate(conversation, image_tokens=None, **kwargs):
        asked.append(conversation.copy())
        return next(replies)

    monkeypatch.setattr(model, "generate", generate)
    return asked


IMAGE = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)


def test_repair_replaces_an_inconsistent_report_and_keeps_the_draft(tiny, monkeypatch):
    asked = _scripted(tiny, monkeypatch, ["The heart is normal in size.", "The heart is enlarged."])
    report = tiny.generate_report(IMAGE)
    assert report.text == "The heart is enlarged."
    c = report.consistency
    assert c.consistent and c.repaired
    assert c.original_report == "The heart is normal in size."
    assert c.repair_request.startswith("The patient also has cardiomegaly")
    # The repair is a correction turn in the same dialog, after the first draft.
    assert [m.text for m in asked[1].messages][-2:] == [
        "The heart is normal in size.",
        c.repair_request,
    ]
    # The dialog continues from the repaired report.
    assert report.conversation.messages[-1].text == "The heart is enlarged."
    assert report.to_dict()["consistency"]["repaired"] is True


def test_repair_that_does_not_help_keeps_the_first_draft(tiny, monkeypatch):
    _scripted(tiny, monkeypatch, ["The heart is normal in size.", "yes"])
    report = tiny.generate_report(IMAGE)
    assert report.text == "The heart is normal in size."
    assert not report.consistency.repaired
    assert report.consistency.notes  # says a repair was tried
    assert [s.label for s in report.consistency.omitted] == ["Cardiomegaly"]


def test_no_repair_option_and_no_check_option(tiny, monkeypatch):
    asked = _scripted(tiny, monkeypatch, ["The heart is normal in size."])
    report = tiny.generate_report(IMAGE, repair=False)
    assert len(asked) == 1 and not report.consistency.consistent
    assert not report.consistency.repaired
    _scripted(tiny, monkeypatch, ["The heart is normal in size."])
    unchecked = tiny.generate_report(IMAGE, check=False)
    assert unchecked.consistency is None and "consistency" not in unchecked.to_dict()


def test_consistent_report_is_not_repaired(tiny, monkeypatch):
    asked = _scripted(tiny, monkeypatch, ["Cardiomegaly. No pleural effusion."])
    report = tiny.generate_report(IMAGE)
    assert len(asked) == 1
    assert report.consistency.consistent and not report.consistency.repaired
    assert report.thresholds and set(report.thresholds) == set(report.findings)
