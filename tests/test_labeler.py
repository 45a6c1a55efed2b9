"""Rule labeler: CheXpert's sample reports, negation/uncertainty scope, evidence, No Finding."""

from __future__ import annotations

import csv

import pytest

from data_paths import SHARED_DATA
from radialog.labeler import Labeler, LabelResult, RuleLabeler, get_labeler, label_report
from radialog.labeler.text import split_sentences
from radialog.labels import CHEXPERT_LABELS

DATA = SHARED_DATA / "chexpert-labeler"


def _chexpert_samples() -> list[tuple[str, dict]]:
    path = DATA / "labeled_reports.csv"
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        (row["Reports"], {k: None if row[k] == "" else int(float(row[k])) for k in CHEXPERT_LABELS})
        for row in rows
    ]


@pytest.mark.skipif(
    not (DATA / "labeled_reports.csv").exists(), reason="shared CheXpert samples absent"
)
def test_chexpert_sample_reports_exact_match():
    with (DATA / "sample_reports.csv").open(newline="") as fh:
        sample_texts = [row[0] for row in csv.reader(fh)]
    samples = _chexpert_samples()
    assert [text for text, _ in samples] == sample_texts  # same four reports, same order
    for text, expected in samples:
        assert label_report(text).labels == expected, text


def labels_of(text: str) -> dict:
    return {k: v for k, v in label_report(text).labels.items() if v is not None}


@pytest.mark.parametrize(
    "text, expected",
    [
        # negation scope over coordinated lists
        ("No effusion or pneumothorax.", {"Pleural Effusion": 0, "Pneumothorax": 0}),
        (
            "No focal consolidation, large pleural effusion, or pneumothorax is seen.",
            {"Consolidation": 0, "Pleural Effusion": 0, "Pneumothorax": 0},
        ),
        (
            "There is no pneumothorax, pleural effusion, focal airspace consolidation.",
            {"Consolidation": 0, "Pleural Effusion": 0, "Pneumothorax": 0},
        ),
        # a new finding after a comma is not negated
        ("No pneumothorax, small bilateral effusions.", {"Pneumothorax": 0, "Pleural Effusion": 1}),
        ("No edema but there is a left basal atelectasis.", {"Edema": 0, "Atelectasis": 1}),
        ("Mild cardiomegaly without pulmonary edema.", {"Cardiomegaly": 1, "Edema": 0}),
        ("The chest is free of pneumothorax.", {"Pneumothorax": 0}),
        ("Negative for acute fracture.", {"Fracture": 0}),
        ("No evidence of pneumonia.", {"Pneumonia": 0}),
        ("Lungs are clear of consolidation.", {"Consolidation": 0}),
        ("The right effusion has resolved.", {"Pleural Effusion": 0}),
        ("Pneumothorax is no longer seen.", {"Pneumothorax": 0}),
        ("The left chest tube has been removed.", {"Support Devices": 0}),
        ("There are no findings of xxxx effusion.", {"Pleural Effusion": 0}),
        # pseudo-negation: "no change" keeps the finding positive
        ("No change in the moderate cardiomegaly.", {"Cardiomegaly": 1}),
        ("Atelectasis at the left base, not significantly changed.", {"Atelectasis": 1}),
        # uncertainty
        ("Pneumonia cannot be excluded.", {"Pneumonia": -1}),
        ("Cannot exclude a small pneumothorax.", {"Pneumothorax": -1}),
        ("Basilar opacity may represent atelectasis.", {"Lung Opacity": 1, "Atelectasis": -1}),
        ("Possible small left effusion.", {"Pleural Effusion": -1}),
        ("Borderline heart size.", {"Cardiomegaly": -1}),
        ("The heart is borderline enlarged.", {"Cardiomegaly": -1}),
        # "upper limits of normal" still says normal (our documented convention)
        ("The heart size is at the upper limits of normal.", {"Cardiomegaly": 0}),
        ("Atelectasis versus pneumonia in the left base.", {"Atelectasis": -1, "Pneumonia": -1}),
        ("Findings suggestive of interstitial edema.", {"Edema": -1}),
        ("Pneumonia is in the differential.", {"Pneumonia": -1}),
        ("No findings to suggest pneumonia.", {"Pneumonia": 0}),
        # attribute phrases
        ("The heart is not enlarged.", {"Cardiomegaly": 0}),
        ("Heart size is normal, large hiatal hernia.", {"Cardiomegaly": 0}),
        ("The cardiac silhouette is moderately enlarged.", {"Cardiomegaly": 1}),
        (
            "The heart and mediastinum are within normal limits.",
            {"Cardiomegaly": 0, "Enlarged Cardiomediastinum": 0},
        ),
        ("Widened mediastinum.", {"Enlarged Cardiomediastinum": 1}),
        # synonyms
        ("Blunting of the left costophrenic angle.", {"Pleural Effusion": 1}),
        ("Patchy airspace disease in the right base.", {"Lung Opacity": 1}),
        ("A 2 cm nodule in the right upper lobe.", {"Lung Lesion": 1}),
        ("Healed left rib fractures.", {"Fracture": 1}),
        ("Old deformity of the left sixth rib.", {"Fracture": -1}),
        ("Right PICC line tip in the SVC. Sternotomy wires.", {"Support Devices": 1}),
        ("Left pleural thickening.", {"Pleural Other": 1}),
        # conventions documented in labeler/vocab.py
        ("Calcified granuloma in the left upper lobe.", {"Lung Lesion": 1}),
        ("Lungs are clear.", {}),
        ("Residua of old granulomatous infection.", {"Lung Lesion": 1}),
        ("Evidence of prior granulomatous disease.", {}),
        # docs/LABELING.md: IU masking, explained densities, alternatives
        ("Mild bibasilar opacities, xxxx atelectasis.", {"Lung Opacity": 1, "Atelectasis": -1}),
        (
            "The heart is large, and the pulmonary xxxx are engorged.",
            {"Cardiomegaly": 1, "Edema": 1},
        ),
        ("Calcified lymph xxxx and granuloma are noted.", {"Lung Lesion": 1}),
        ("Substernal density may be related to a pectus deformity.", {}),
        ("Stable paratracheal soft tissue density.", {}),
        ("There is a 1 cm nodular density in the right midlung.", {"Lung Lesion": 1}),
        ("Mild airspace disease and/or atelectasis.", {"Lung Opacity": -1, "Atelectasis": -1}),
        ("Mild wedge compression deformity of a midthoracic vertebral body.", {"Fracture": 1}),
        ("VP shunt tubing is identified.", {"Support Devices": 1}),
        ("A calcified pleural plaque has not xxxx since the CT.", {"Pleural Other": 1}),
    ],
)
def test_scope_cases(text, expected):
    got = labels_of(text)
    got.pop("No Finding", None)
    assert got == expected


def test_no_finding_rule():
    normal = label_report("No acute cardiopulmonary abnormality.")
    assert normal.labels["No Finding"] == 1
    assert normal.evidence["No Finding"] == ["No acute cardiopulmonary abnormality."]
    devices_only = label_report("Endotracheal tube in good position. No pneumothorax.")
    assert devices_only.labels["No Finding"] == 1 and devices_only.labels["Support Devices"] == 1
    uncertain = label_report("Possible small left effusion.")
    assert uncertain.labels["No Finding"] is None
    # An empty report says nothing: every label blank, not "No Finding".
    assert all(v is None for v in label_report("  ").labels.values())


def test_evidence_names_the_deciding_sentences():
    result = label_report(
        "FINDINGS: Mild cardiomegaly. No pleural effusion. Small left effusion is possible. "
        "IMPRESSION: Small left pleural effusion."
    )
    assert result.labels["Pleural Effusion"] == 1
    # Only the sentence(s) that gave the winning value are evidence.
    assert result.evidence["Pleural Effusion"] == ["IMPRESSION: Small left pleural effusion."]
    assert result.evidence["Cardiomegaly"] == ["FINDINGS: Mild cardiomegaly."]
    assert set(result.evidence) == {"Cardiomegaly", "Pleural Effusion"}


def test_sentence_splitting_handles_lists_deid_and_decimals():
    text = "1. Nodule measuring 1.5 cm\n2. Normal chest x-XXXX.\n\nThere is ___ effusion"
    assert split_sentences(text) == [
        "Nodule measuring 1.5 cm",
        "Normal chest x-xxxx.",
        "There is xxxx effusion",
    ]


def test_label_result_contract_and_vector():
    result = label_report("Possible pneumonia. Mild cardiomegaly. No effusion.")
    assert isinstance(result, LabelResult)
    assert tuple(result.labels) == CHEXPERT_LABELS
    vec = result.to_vector()
    assert vec[CHEXPERT_LABELS.index("Pneumonia")] == 1
    assert vec[CHEXPERT_LABELS.index("Pleural Effusion")] == 0
    assert vec[CHEXPERT_LABELS.index("Edema")] == 0
    strict = result.to_vector(uncertain_as=0, blank_as=None)
    assert strict[CHEXPERT_LABELS.index("Pneumonia")] == 0
    assert strict[CHEXPERT_LABELS.index("Edema")] is None
    assert result.positives() == ["Cardiomegaly"]
    assert result.positives(include_uncertain=True) == ["Cardiomegaly", "Pneumonia"]
    with pytest.raises(ValueError):
        LabelResult({"Cardiomegaly": 1}, {})


def test_labeler_protocol_and_batch():
    labeler = get_labeler("rules")
    assert isinstance(labeler, RuleLabeler) and isinstance(labeler, Labeler)
    texts = ["No effusion.", "Large right pneumothorax."]
    assert labeler.label(texts) == [label_report(t) for t in texts]
    assert labeler.label([]) == []
