"""Findings-faithfulness measures (benchmarks/quality.py)."""

from __future__ import annotations

import numpy as np
import pytest

from radialog.consistency import default_labeler
from radialog.evaluation import faithfulness as F


@pytest.fixture(scope="module")
def labeler():
    return default_labeler()


def test_counts_and_micro_f1_leave_no_finding_out():
    labels = {"Cardiomegaly": 1, "Edema": 0, "Pleural Effusion": 1, "No Finding": 1}
    assert F.counts(["Cardiomegaly", "Edema", "No Finding"], labels) == (1, 1, 1)
    rows = np.array([[1, 1, 1], [2, 0, 0]], dtype=float)
    assert F.micro_f1(rows) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    # Empty list + normal report: nothing to count, a perfect score on its own.
    assert F.micro_f1(np.zeros((1, 3))) == 1.0


def test_faithfulness_and_repair_variant():
    item = F.FaithItem("text", "x", ["Edema"])
    rec = F.FaithRecord(item, ["Edema"], "Normal.", {"Edema": 0})
    rec.repaired, rec.repaired_labels = "Edema.", {"Edema": 1}
    assert F.faithfulness([rec], samples=20)["value"] == 0.0
    assert F.faithfulness([rec], "repaired", samples=20)["value"] == 1.0
    # The correction turn kept nothing: its stage reads the draft.
    assert F.faithfulness([rec], "turn", samples=20)["value"] == 0.0


def test_degeneration_measures():
    vocab = {"the", "heart", "is", "normal", "lungs", "are", "clear"}
    texts = ["The heart is normal. The heart is normal.", "The lungs are mediobiliaculum."]
    out = F.degeneration(texts, vocab, samples=20)
    assert out["repeat_share"]["value"] == 0.5
    assert out["oov_share"]["value"] == pytest.approx(1 / 12)
    assert not F.repeats_a_sentence("The heart is normal. The lungs are clear.")


def test_counterfactual_items_are_fixed_by_seed(tmp_path):
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    a = F.counterfactual_items(images, 5, seed=3)
    b = F.counterfactual_items(images, 5, seed=3)
    assert [i.listed for i in a] == [i.listed for i in b] and len(a) == 10
    assert all(len(i.listed) <= 3 and "No Finding" not in i.listed for i in a)
    assert len({tuple(i.listed) for i in a}) > 1


def test_qa_agreement_counts_yes_only_for_listed(labeler):
    item = F.FaithItem("counterfactual", "i", ["Edema"])
    records = F.ConstantNormal().run([item], labeler)
    # The constant report says "no" to both questions: right about the unlisted label only.
    assert [q[1] for q in records[0].qa] == [True, False]
    assert F.qa_agreement(records, samples=20)["value"] == 0.5
    assert F.faithfulness(records, samples=20)["value"] == 0.0


def test_constant_normal_takes_phantom_lists_from_a_model(labeler):
    phantom = F.FaithItem("phantom", "p1", None)
    alone = F.ConstantNormal().run([phantom], labeler)
    given = F.ConstantNormal({"p1": ["Cardiomegaly"]}).run([phantom], labeler)
    assert alone[0].listed == [] and given[0].listed == ["Cardiomegaly"]
    # A normal report for a non-empty list is unfaithful, not trivially perfect.
    assert F.faithfulness(given, samples=20)["value"] == 0.0


def test_run_model_on_tiny_model_records_reports_qa_and_repair(labeler, tmp_path):
    from radialog.imaging import example_image_path
    from radialog.model import RadialogModel

    model = RadialogModel.from_config("tiny")
    items = [
        F.FaithItem("counterfactual", "cf", ["Edema"], example_image_path()),
        F.FaithItem("text", "t", ["Cardiomegaly"], None, "The heart is enlarged."),
    ]
    # Drafts (one batch), the text item's one-finding report (sentence repair), QA answers.
    replies = iter(
        ["The lungs are clear.", "Edema is present.", "The heart is enlarged.", "yes", "no"]
        + ["no", "no"]
    )
    model.generate_batch = lambda convs, tokens, **kw: [next(replies) for _ in convs]
    model.generate = lambda conv, tokens=None, **kw: "There is mild pulmonary edema."
    records = F.run_model(model, items, labeler, max_new_tokens=8, batch_size=2)
    cf, text = records
    assert cf.report == "The lungs are clear." and cf.repaired == "There is mild pulmonary edema."
    assert cf.repair_method == "correction" and cf.turn_repaired == cf.repaired
    # The correction turn did not help the text item; the sentence repair did.
    assert text.turn_repaired is None
    assert text.repaired == "The heart is enlarged." and text.repair_method == "sentences"
    assert [q[2] for q in cf.qa] == ["yes", "no"] and len(text.qa) == 2
    summary = F.summarize(records, {"the", "lungs", "are", "clear"}, samples=20)
    assert summary["faithfulness_counterfactual"]["value"] == 0.0
    assert summary["faithfulness_counterfactual_repaired"]["value"] == 1.0
    assert summary["faithfulness_text_turn"]["value"] == 0.0
    assert summary["faithfulness_text_repaired"]["value"] == 1.0
    assert summary["sentence_repair_share_text"] == 1.0
    assert summary["qa_agreement"]["n"] == 4
