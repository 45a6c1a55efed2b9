"""Clinical efficacy under both uncertainty conventions, on hand-built label matrices."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from radialog.labels import CHEXPERT_LABELS
from radialog.metrics.clinical import binarize, clinical_efficacy, label_matrix

NEG, UNC = "ce_radialog_uncertain_negative", "ce_uncertain_positive"


def _rows(spec: list[dict[str, int]]) -> np.ndarray:
    return label_matrix([{name: d.get(name) for name in CHEXPERT_LABELS} for d in spec])


REF = _rows(
    [
        {"Cardiomegaly": 1, "Edema": -1},
        {"Cardiomegaly": 0, "Pleural Effusion": 1},
        {"No Finding": 1},
        {"Edema": 1, "Atelectasis": -1},
    ]
)
PRED = _rows(
    [
        {"Cardiomegaly": 1, "Edema": 1},
        {"Cardiomegaly": 1, "Pleural Effusion": -1},
        {"No Finding": 1},
        {"Atelectasis": 1},
    ]
)


def test_uncertain_negative_hand_computed():
    m = clinical_efficacy(PRED, REF, NEG)["metrics"]
    # Positives: ref {Card}, {PE}, {NF}, {Edema}; pred {Card, Edema}, {Card}, {NF}, {Atel}.
    assert math.isclose(m["f1_macro/14"], (1 + 2 / 3) / 14)
    assert math.isclose(m["precision_micro/14"], 2 / 5)
    assert math.isclose(m["recall_micro/14"], 2 / 4)
    assert math.isclose(m["f1_micro/14"], 4 / 9)
    assert math.isclose(m["f1_macro/5"], (2 / 3) / 5)
    assert math.isclose(m["f1_micro/5"], 2 / 7)
    assert math.isclose(m["f1_samples/14"], (2 / 3 + 0 + 1 + 0) / 4)


def test_uncertain_positive_hand_computed():
    result = clinical_efficacy(PRED, REF, UNC)
    m = result["metrics"]
    # Positives: ref {Card, Edema}, {PE}, {NF}, {Edema, Atel}; pred {Card, Edema}, {Card, PE}, {NF}, {Atel}.
    assert math.isclose(m["f1_macro/14"], (1 + 2 / 3 + 2 / 3 + 1 + 1) / 14)
    assert math.isclose(m["f1_micro/14"], 5 / 6)
    assert math.isclose(m["f1_samples/14"], (1 + 2 / 3 + 1 + 2 / 3) / 4)
    assert result["convention"] == UNC
    table = result["per_label"]
    assert table["Edema"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": 2 / 3,
        "support": 2,
        "predicted": 1,
    }
    assert table["Fracture"]["f1"] == 0.0 and table["Fracture"]["support"] == 0


@pytest.mark.parametrize("convention", [NEG, UNC])
def test_matches_sklearn_on_random_matrices(convention):
    rng = np.random.default_rng(3)
    values = np.array([1, 0, -1, np.nan])
    pred = rng.choice(values, size=(120, 14), p=[0.2, 0.3, 0.1, 0.4])
    ref = rng.choice(values, size=(120, 14), p=[0.2, 0.3, 0.1, 0.4])
    ref[:, 12] = np.nan  # a label with no positives at all: sklearn's zero_division=0
    m = clinical_efficacy(pred, ref, convention)["metrics"]
    p, r = binarize(pred, convention), binarize(ref, convention)
    five = [
        CHEXPERT_LABELS.index(n)
        for n in ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for avg in ("macro", "micro", "samples"):
            assert math.isclose(m[f"f1_{avg}/14"], f1_score(r, p, average=avg))
        assert math.isclose(m["precision_macro/14"], precision_score(r, p, average="macro"))
        assert math.isclose(
            m["recall_macro/5"], recall_score(r[:, five], p[:, five], average="macro")
        )


def test_label_matrix_reads_by_name_and_rejects_bad_values():
    class Result:  # the LabelResult shape: a .labels dict
        labels = dict(reversed([(n, None) for n in CHEXPERT_LABELS])) | {"Edema": -1}

    m = label_matrix([Result()])
    assert m[0, CHEXPERT_LABELS.index("Edema")] == -1 and np.isnan(m[0, 0])
    with pytest.raises(ValueError, match="not 1, 0, -1"):
        label_matrix([[2] + [None] * 13])
    with pytest.raises(ValueError, match="unknown CE convention"):
        binarize(m, "nope")
