"""BERTScore with the bundled all-MiniLM-L6-v2 (offline), on a few sentences."""

from __future__ import annotations

import pytest
import torch

from radialog.errors import ModelNotFoundError
from radialog.metrics.bertscore import (
    DEFAULT_ENCODER,
    DEFAULT_LAYER,
    bert_score,
    default_encoder_path,
)


@pytest.fixture(scope="module")
def result():
    try:
        default_encoder_path()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))
    torch.set_num_threads(2)
    preds = [
        "The heart is normal in size. The lungs are clear.",
        "The heart is normal in size. The lungs are clear.",
        "The heart is normal in size. The lungs are clear.",
    ]
    refs = [
        "The heart is normal in size. The lungs are clear.",
        "Heart size is within normal limits, and the lungs are clear.",
        "A displaced fracture of the left femoral neck is seen after the fall.",
    ]
    return bert_score(preds, refs, batch_size=8, device="cpu")


def test_identical_texts_score_one(result):
    assert result.f1[0] == pytest.approx(1.0, abs=1e-4)
    assert result.precision[0] == pytest.approx(1.0, abs=1e-4)


def test_paraphrase_beats_unrelated_text(result):
    assert result.f1[1] > result.f1[2] + 0.2
    assert result.f1[1] < result.f1[0]


def test_result_names_encoder_and_layer(result):
    assert (result.encoder, result.layer, result.rescaled) == (
        DEFAULT_ENCODER,
        DEFAULT_LAYER,
        False,
    )
    assert DEFAULT_ENCODER in result.convention and f"layer {DEFAULT_LAYER}" in result.convention


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a local model directory"):
        bert_score(["a"], ["a"], model=tmp_path / "distilroberta-base")
