"""CheXbert loading and label mapping on a fabricated tiny checkpoint (Stanford's key layout)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig

from radialog.errors import CheckpointError, ModelNotFoundError
from radialog.labeler import get_labeler
from radialog.labeler.chexbert import (
    CHEXBERT_CONDITIONS,
    CLASS_VALUES,
    CheXbertLabeler,
    CheXbertModel,
)
from radialog.labels import CHEXPERT_LABELS

torch.set_num_threads(1)

WORDS = ["no", "pleural", "effusion", "mild", "cardiomegaly", "heart", "size", "normal", "."]


def tiny_model(seed: int = 0) -> CheXbertModel:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=1,  # what config_from_state_dict infers for hidden < 64
        intermediate_size=37,
        max_position_embeddings=24,
    )
    return CheXbertModel(config)


def force_classes(model: CheXbertModel, classes: list[int]) -> None:
    """Zero every head's weights and set its bias so that argmax is the given class."""
    with torch.no_grad():
        for head, cls in zip(model.linear_heads, classes, strict=True):
            head.weight.zero_()
            head.bias.fill_(-5.0)
            head.bias[cls] = 5.0


def save_stanford(model: CheXbertModel, path, *, legacy_position_ids: bool = True, mutate=None):
    state = {"module." + k: v for k, v in model.state_dict().items()}
    if legacy_position_ids:  # old transformers saved this buffer; the loader must accept it
        state["module.bert.embeddings.position_ids"] = torch.arange(24).unsqueeze(0)
    if mutate:
        mutate(state)
    torch.save({"model_state_dict": state, "epoch": 3}, path)


@pytest.fixture()
def vocab_dir(tmp_path):
    directory = tmp_path / "bert-base-uncased"
    directory.mkdir()
    (directory / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n"
    )
    return directory


# Class per CheXbert head: cycles through blank/positive/negative/uncertain; No Finding blank.
CLASSES = [i % 4 for i in range(13)] + [0]


def test_labels_come_out_in_canonical_order(tmp_path, vocab_dir):
    model = tiny_model()
    force_classes(model, CLASSES)
    save_stanford(model, tmp_path / "chexbert.pth")
    labeler = CheXbertLabeler.from_checkpoint(tmp_path / "chexbert.pth", tokenizer=vocab_dir)
    results = labeler.label(["No pleural effusion.", "mild cardiomegaly", ""])
    assert len(results) == 3
    expected = {name: CLASS_VALUES[c] for name, c in zip(CHEXBERT_CONDITIONS, CLASSES, strict=True)}
    for result in results:
        assert tuple(result.labels) == CHEXPERT_LABELS
        assert result.labels == {name: expected[name] for name in CHEXPERT_LABELS}
    # Spot checks against CheXbert's documented mapping: head 1 (Cardiomegaly) class 1 = positive,
    # head 2 (Lung Opacity) class 2 = negative, head 3 (Lung Lesion) class 3 = uncertain.
    assert results[0].labels["Cardiomegaly"] == 1
    assert results[0].labels["Lung Opacity"] == 0
    assert results[0].labels["Lung Lesion"] == -1
    assert results[0].labels["Enlarged Cardiomediastinum"] is None


def test_no_finding_head_is_the_last_with_two_classes(tmp_path, vocab_dir):
    model = tiny_model()
    assert model.linear_heads[-1].out_features == 2
    assert all(h.out_features == 4 for h in model.linear_heads[:-1])
    force_classes(model, [0] * 13 + [1])
    save_stanford(model, tmp_path / "chexbert.pth")
    # A directory holding chexbert.pth and a bert-base-uncased/ folder works without options.
    result = get_labeler(tmp_path).label(["heart size normal ."])[0]
    assert result.labels["No Finding"] == 1
    assert [v for k, v in result.labels.items() if k != "No Finding"] == [None] * 13


def test_loaded_weights_match_and_output_is_deterministic(tmp_path, vocab_dir):
    model = tiny_model(seed=1)
    save_stanford(model, tmp_path / "chexbert.pth")
    labeler = CheXbertLabeler.from_checkpoint(tmp_path / "chexbert.pth", tokenizer=vocab_dir)
    for name, tensor in model.state_dict().items():
        assert torch.equal(labeler.model.state_dict()[name], tensor), name
    texts = ["no pleural effusion . " * 30, "mild cardiomegaly"]  # the first exceeds 24 tokens
    assert labeler.encode(texts[0])[-1] == labeler.tokenizer.sep_token_id
    assert len(labeler.encode(texts[0])) == 24
    assert labeler.label(texts) == labeler.label(texts)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("module.linear_heads.13.bias"), "missing"),
        (lambda s: s.update({"module.extra_head.weight": torch.zeros(2)}), "unexpected"),
        (lambda s: s.update({"module.linear_heads.13.weight": torch.zeros(3, 32)}), "size"),
        (lambda s: s.pop("module.bert.embeddings.word_embeddings.weight"), "not a CheXbert"),
    ],
)
def test_wrong_layout_is_a_checkpoint_error(tmp_path, vocab_dir, mutate, message):
    save_stanford(tiny_model(), tmp_path / "chexbert.pth", mutate=mutate)
    with pytest.raises(CheckpointError, match=message):
        CheXbertLabeler.from_checkpoint(tmp_path / "chexbert.pth", tokenizer=vocab_dir)


def test_not_a_checkpoint_file(tmp_path, vocab_dir):
    (tmp_path / "chexbert.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError):
        CheXbertLabeler.from_checkpoint(tmp_path / "chexbert.pth", tokenizer=vocab_dir)


def test_missing_tokenizer_and_checkpoint_are_clear_errors(tmp_path):
    save_stanford(tiny_model(), tmp_path / "chexbert.pth")
    with pytest.raises(ModelNotFoundError, match="--chexbert-tokenizer"):
        CheXbertLabeler.from_checkpoint(tmp_path / "chexbert.pth")
    with pytest.raises(ModelNotFoundError):
        get_labeler(tmp_path / "nowhere.pth")
    with pytest.raises(ModelNotFoundError, match="chexbert.pth"):
        get_labeler("chexbert")


def test_a_chexbert_checkpoint_goes_through_the_labeler_benchmark(tmp_path, vocab_dir, capsys):
    """benchmarks/labeler.py scores a given CheXbert checkpoint on the same sets as the rules."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    gold = root.parent / "shared" / "data" / "negbio" / "openi_gld_std14.csv"
    if not gold.exists() or importlib.util.find_spec("torchxrayvision") is None:
        pytest.skip("needs ../shared/data/negbio and torchxrayvision's reports")
    spec = importlib.util.spec_from_file_location(
        "bench_labeler", root / "benchmarks" / "labeler.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    save_stanford(tiny_model(), tmp_path / "chexbert.pth")
    args = ["--labeler", str(tmp_path / "chexbert.pth"), "--tokenizer", str(vocab_dir)]
    assert bench.main([*args, "--limit", "40", "--gold", str(gold)]) == 0
    out = capsys.readouterr().out
    assert f"labeler: {tmp_path / 'chexbert.pth'}" in out
    assert "OpenI reports with gold labels: 40" in out
    assert "careful IU, held out: 80 reports" in out
