"""The report checks itself: consistency block and the automatic repair turn."""

from __future__ import annotations

import numpy as np
import pytest

from radialog.consistency import check_report, default_labeler, repair_instruction
from radialog.model import RadialogModel
from radialog.model.prompt import IMAGE_PLACEHOLDER, Conversation
from radialog.repair import finding_sentence, splice_report


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


def _scripted(model, monkeypatch, answers, batches=()):
    """The LLM's replies, in order (the repair logic is under test, not the tiny LLM);
    `batches`: the replies of each `generate_batch` call (the sentence repair's)."""
    asked: list[Conversation] = []
    replies = iter(answers)
    batch_replies = iter(batches)

    def generate(conversation, image_tokens=None, **kwargs):
        asked.append(conversation.copy())
        return next(replies)

    def generate_batch(conversations, image_tokens=None, **kwargs):
        asked.extend(c.copy() for c in conversations)
        texts = next(batch_replies, None)
        return list(texts) if texts is not None else [""] * len(conversations)

    monkeypatch.setattr(model, "generate", generate)
    monkeypatch.setattr(model, "generate_batch", generate_batch)
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


def test_splice_drops_unlisted_and_contradicting_sentences_and_adds_missing_ones(labeler):
    report = (
        "The heart is normal in size. There is a right lower lobe pneumonia. "
        "No pleural effusion. The lungs are otherwise clear. No pneumothorax."
    )
    asked = []

    def sentence_for(labels):
        asked.append(list(labels))
        return {"Cardiomegaly": "The heart is enlarged.", "Pleural Effusion": None}

    splice = splice_report(report, ["Cardiomegaly", "Pleural Effusion"], sentence_for, labeler)
    assert asked == [["Cardiomegaly", "Pleural Effusion"]]  # once, for what is missing
    assert splice.dropped == [
        "The heart is normal in size.",  # negates a listed finding
        "There is a right lower lobe pneumonia.",  # asserts an unlisted one
        "No pleural effusion.",
    ]
    assert splice.report == "The heart is enlarged. The lungs are otherwise clear. No pneumothorax."
    assert splice.added == {"Cardiomegaly": "The heart is enlarged."}
    assert splice.missing == ["Pleural Effusion"]
    assert any("pleural effusion" in n for n in splice.notes())
    check = check_report(splice.report, ["Cardiomegaly", "Pleural Effusion"], labeler)
    assert [s.label for s in check.omitted] == ["Pleural Effusion"] and not check.unsupported


def test_splice_puts_finding_sentences_in_list_order_before_the_rest(labeler):
    listed = ["Cardiomegaly", "Edema", "Pleural Effusion"]
    splice = splice_report(
        "The heart is enlarged. No pneumothorax. There is a small left pleural effusion.",
        listed,
        lambda labels: {"Edema": "There is mild pulmonary vascular congestion."},
        labeler,
    )
    assert splice.report == (
        "The heart is enlarged. There is mild pulmonary vascular congestion. "
        "There is a small left pleural effusion. No pneumothorax."
    )
    assert not splice.dropped
    assert check_report(splice.report, listed, labeler).consistent


def test_finding_sentence_takes_the_first_that_states_only_that_finding(labeler):
    text = (
        "The heart is enlarged and there is a pleural effusion. "
        "There is a small left pleural effusion. There is a moderate right pleural effusion."
    )
    assert finding_sentence(text, "Pleural Effusion", labeler) == (
        "There is a small left pleural effusion."
    )
    assert finding_sentence("The lungs are clear.", "Edema", labeler) is None
    assert finding_sentence("", "Edema", labeler) is None


def test_sentence_repair_when_the_correction_turn_does_not_help(tiny, monkeypatch):
    # Draft omits cardiomegaly; the correction turn answers "yes" (not kept); the model's
    # one-finding report for [cardiomegaly] supplies the sentence.
    asked = _scripted(
        tiny,
        monkeypatch,
        ["The heart is normal in size. No pneumothorax.", "yes"],
        batches=[["The heart is enlarged. The lungs are clear."]],
    )
    report = tiny.generate_report(IMAGE)
    c = report.consistency
    assert report.text == "The heart is enlarged. No pneumothorax."
    assert c.consistent and c.repaired and c.repair_method == "sentences"
    assert c.original_report == "The heart is normal in size. No pneumothorax."
    assert [a["method"] for a in c.attempts] == ["correction", "sentences"]
    assert [a["kept"] for a in c.attempts] == [False, True]
    # The one-finding prompt lists only the missing finding and shows the same image.
    one = asked[2].messages[0].text
    assert IMAGE_PLACEHOLDER in one and "Predicted Findings: cardiomegaly." in one
    assert "sentence by sentence" in c.summary()
    block = report.to_dict()["consistency"]
    assert block["repair_method"] == "sentences" and len(block["attempts"]) == 2
    assert report.conversation.messages[-1].text == report.text


def test_sentence_repair_is_not_kept_when_it_finds_no_sentence(tiny, monkeypatch):
    _scripted(
        tiny,
        monkeypatch,
        ["The heart is normal in size.", "yes"],
        batches=[["The lungs are clear."]],
    )
    report = tiny.generate_report(IMAGE)
    assert report.text == "The heart is normal in size."
    c = report.consistency
    assert not c.repaired and c.repair_method is None
    assert [a["kept"] for a in c.attempts] == [False, False]


def test_sentence_repair_can_be_turned_off(tiny, monkeypatch):
    asked = _scripted(tiny, monkeypatch, ["The heart is normal in size.", "yes"])
    conversation = Conversation().add_user("<image>. Predicted Findings: cardiomegaly.")
    conversation.add_assistant("The heart is normal in size.")
    text, _, check = tiny.repair_report(conversation, ["Cardiomegaly"], sentences=False)
    assert text == "The heart is normal in size." and len(asked) == 1
    assert [a["method"] for a in check.attempts] == ["correction"]
