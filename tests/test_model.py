"""RadialogModel on the tiny random config: splicing, training inputs, save/load, reports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_paths import SHARED_DATA
from radialog import DISCLAIMER
from radialog.errors import CheckpointError, ModelNotFoundError
from radialog.labels import CHEXPERT_LABELS
from radialog.model.prompt import Conversation, report_conversation
from radialog.model.radialog_model import IGNORE_INDEX, RadialogModel, Report

torch.set_num_threads(1)

IMAGE = SHARED_DATA / "images" / "00000001_000.png"


@pytest.fixture(scope="module")
def tiny() -> RadialogModel:
    return RadialogModel.from_config("tiny")


def _randomise_trained_parts(model: RadialogModel, seed: int = 1) -> None:
    """Stand-in for training: LoRA B starts at zero, so give every trained part new values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for p in model.trained_modules().parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    model.classifier.set_thresholds([0.3 + 0.02 * i for i in range(14)])


def test_tiny_model_basics(tiny: RadialogModel) -> None:
    assert tiny.is_trained is False
    assert tiny.num_image_tokens == 4
    assert tiny.llm_hidden_size == 32
    # SmolLM2's EOS is <|im_end|>, not </s>; the codec maps the format's "</s>" onto it.
    assert tiny.tokenizer.convert_ids_to_tokens(tiny.codec.eos_token_id) == "<|im_end|>"
    ids = tiny.codec.encode("a</s>b")
    assert ids.count(tiny.codec.eos_token_id) == 1
    assert ids == tiny.codec.encode("a") + [tiny.codec.eos_token_id] + tiny.codec.encode(
        "b", add_prefix=False
    )
    # Base LLM frozen, LoRA + image parts trainable.
    trainable = {n for n, p in tiny.llm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_encode_image_and_findings_shapes(tiny: RadialogModel) -> None:
    x = torch.rand(2, 3, 64, 64)
    tokens = tiny.encode_image(x)
    assert tokens.shape == (2, 4, 32)
    probs = tiny.predict_findings(torch.rand(2, 3, 72, 72))
    assert probs.shape == (2, 14)
    assert bool(((probs >= 0) & (probs <= 1)).all())


def test_image_splicing_matches_manual_construction(tiny: RadialogModel) -> None:
    conv = report_conversation("edema")
    image_tokens = torch.randn(1, 4, 32)
    out = tiny.prepare_inputs([conv], image_tokens, train=False, return_spans=True)
    text = conv.render()
    before, after = text.split("<image>")
    embed = tiny.llm.get_input_embeddings()
    with torch.no_grad():
        manual = torch.cat(
            [
                embed(torch.tensor(tiny.codec.encode(before))),
                image_tokens[0],
                embed(torch.tensor(tiny.codec.encode(after, add_prefix=False))),
            ]
        )
    n_before = len(tiny.codec.encode(before))
    assert out["image_spans"] == [(n_before, n_before + 4)]
    assert out["inputs_embeds"].shape == (1, manual.shape[0], 32)
    assert torch.allclose(out["inputs_embeds"][0], manual)
    assert torch.equal(out["inputs_embeds"][0, n_before : n_before + 4], image_tokens[0])
    assert bool(out["attention_mask"].all())


def test_training_inputs_labels_and_padding(tiny: RadialogModel) -> None:
    long = report_conversation("edema, cardiomegaly").add_assistant("Mild edema. Enlarged heart.")
    short = Conversation().add_user("Is it normal?").add_assistant("Yes.")
    imgs = [torch.randn(4, 32), None]
    batch = tiny.prepare_inputs([long, short], imgs, train=True, return_spans=True)
    labels, mask = batch["labels"], batch["attention_mask"]
    assert batch["inputs_embeds"].shape[:2] == labels.shape == mask.shape
    for row, conv in enumerate([long, short]):
        _, target = conv.training_pair()
        want = tiny.codec.encode(target, add_prefix=False) + [tiny.codec.eos_token_id]
        supervised = labels[row][labels[row] != IGNORE_INDEX].tolist()
        assert supervised == want  # loss only on the last assistant turn + EOS
        n = int(mask[row].sum())
        assert bool(mask[row, :n].all()) and not bool(mask[row, n:].any())  # right padding
        assert int((labels[row, :n] != IGNORE_INDEX).sum()) == len(want)
        assert labels[row, n - 1].item() == tiny.codec.eos_token_id
    start, end = batch["image_spans"][0]
    assert bool((labels[0, start:end] == IGNORE_INDEX).all())
    assert batch["image_spans"][1] is None

    gen = tiny.prepare_inputs(
        [Conversation().add_user("hi"), Conversation().add_user("a longer one")], train=False
    )
    assert not bool(gen["attention_mask"][0, 0]) and bool(gen["attention_mask"][0, -1])  # left pad
    assert "labels" not in gen


def test_placeholder_without_image_is_an_error(tiny: RadialogModel) -> None:
    with pytest.raises(ValueError, match="no image"):
        tiny.prepare_inputs([report_conversation("edema")], train=False)


def test_loss_backpropagates_into_image_branch_and_lora(tiny: RadialogModel) -> None:
    conv = report_conversation("edema").add_assistant("Mild pulmonary edema.")
    tiny.train()
    try:
        tiny.zero_grad()
        loss = tiny.loss([conv, conv], images=torch.rand(2, 3, 64, 64))
        assert torch.isfinite(loss)
        loss.backward()
        assert tiny.adapter.query_tokens.grad is not None
        assert any(p.grad is not None for p in tiny.encoder.parameters())
        lora = [p for n, p in tiny.llm.named_parameters() if "lora_" in n]
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)
        base = tiny.llm.get_input_embeddings().weight
        assert base.grad is None
        cls_loss = tiny.classifier_logits(torch.rand(2, 3, 72, 72)).sum()
        cls_loss.backward()
        assert tiny.classifier.fc2.weight.grad is not None
    finally:
        tiny.zero_grad()
        tiny.eval()


def test_generate_text_and_batch_consistency(tiny: RadialogModel) -> None:
    conv = Conversation().add_user("Describe the image.")
    text = tiny.generate(conv, max_new_tokens=5)
    assert isinstance(text, str)
    # Greedy decoding is deterministic, and left padding in a batch does not change the answer.
    assert tiny.generate(conv, max_new_tokens=5) == text
    batch = tiny.generate_batch(
        [Conversation().add_user("A much longer question about the chest x-ray image?"), conv],
        max_new_tokens=5,
    )
    assert batch[1] == text


def test_save_load_round_trip(tiny: RadialogModel, tmp_path: Path) -> None:
    model = RadialogModel.from_config("tiny")
    _randomise_trained_parts(model)
    model.is_trained = True
    out = model.save_pretrained(tmp_path / "saved")

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "config.json" in files and "model.safetensors" in files
    assert "adapter/adapter_model.safetensors" in files and "adapter/adapter_config.json" in files
    assert not list(tmp_path.glob(".saved*"))  # no temp dirs left behind
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all(
        k.split(".")[0] in {"encoder", "adapter", "classifier", "classifier_encoder"} for k in keys
    )
    assert "classifier.thresholds" in keys
    with safe_open(str(out / "adapter" / "adapter_model.safetensors"), framework="pt") as f:
        adapter_keys = list(f.keys())
    assert adapter_keys and all("lora_" in k for k in adapter_keys)  # no base-LLM weights

    loaded = RadialogModel.from_pretrained(out)
    assert loaded.is_trained is True
    x = torch.rand(1, 3, 64, 64)
    xc = torch.rand(1, 3, 72, 72)
    assert torch.equal(loaded.thresholds, model.thresholds)
    assert torch.allclose(loaded.predict_findings(xc), model.predict_findings(xc))
    with torch.no_grad():
        t_model, t_loaded = model.encode_image(x), loaded.encode_image(x)
    assert torch.allclose(t_model, t_loaded)
    conv = report_conversation("edema")
    with torch.no_grad():
        logits_a = model.llm(**model.prepare_inputs([conv], t_model, train=False)).logits
        logits_b = loaded.llm(**loaded.prepare_inputs([conv], t_loaded, train=False)).logits
    assert torch.allclose(logits_a, logits_b, atol=1e-5)
    # The LoRA weights matter: the untrained model gives different logits.
    with torch.no_grad():
        logits_c = tiny.llm(**tiny.prepare_inputs([conv], t_model, train=False)).logits
    assert not torch.allclose(logits_a, logits_c, atol=1e-3)
    assert model.generate(conv, t_model, max_new_tokens=6) == loaded.generate(
        conv, t_loaded, max_new_tokens=6
    )

    # Saving again over the same directory replaces it atomically.
    loaded.save_pretrained(out)
    assert (out / "model.safetensors").is_file()


def test_load_rejects_mismatched_checkpoint(tmp_path: Path) -> None:
    model = RadialogModel.from_config("tiny")
    out = model.save_pretrained(tmp_path / "m")
    from safetensors.torch import load_file, save_file

    state = load_file(str(out / "model.safetensors"))
    state.pop("classifier.fc2.bias")
    save_file(state, str(out / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing"):
        RadialogModel.from_pretrained(out)


def test_from_pretrained_names_and_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        RadialogModel.from_pretrained("definitely-not-a-model")
    with pytest.raises(ModelNotFoundError):
        RadialogModel.from_pretrained(tmp_path)  # empty dir: not a saved model
    untrained = RadialogModel.from_pretrained("tiny")
    assert untrained.is_trained is False
    with pytest.raises(ModelNotFoundError, match="llm.source"):
        RadialogModel.from_config("radialog-v2")


@pytest.mark.skipif(not IMAGE.is_file(), reason="shared test images not available")
def test_generate_report_on_real_image(tiny: RadialogModel) -> None:
    report = tiny.generate_report(IMAGE, max_new_tokens=5)
    assert isinstance(report, Report)
    assert list(report.findings) == list(CHEXPERT_LABELS)
    assert all(0.0 <= p <= 1.0 for p in report.findings.values())
    thr = dict(zip(CHEXPERT_LABELS, tiny.thresholds.tolist(), strict=True))
    above = [k for k, p in report.findings.items() if p > thr[k]]
    assert set(report.predicted) <= set(above)
    assert isinstance(report.text, str)
    d = report.to_dict()
    assert set(d) == {
        "findings",
        "thresholds",
        "predicted",
        "report",
        "model",
        "disclaimer",
        "timings",
        "consistency",
    }
    assert set(d["thresholds"]) == set(d["findings"])
    assert d["consistency"]["listed"] == [p for p in report.predicted if p != "No Finding"]
    assert d["model"] == "tiny" and d["disclaimer"] == DISCLAIMER
    assert {"preprocess", "classifier", "encode", "generate", "total"} <= set(d["timings"])
    # The follow-up dialog starts from the report prompt and the report.
    assert report.conversation is not None and report.conversation.messages[-1].text == report.text
    # Bytes input gives the same findings as the path.
    again = tiny.generate_report(IMAGE.read_bytes(), max_new_tokens=1)
    assert again.findings == pytest.approx(report.findings)


@pytest.mark.slow
def test_real_smollm2_gguf_generates() -> None:
    model = RadialogModel.from_config("radialog-mini")
    assert model.llm_hidden_size == 576
    assert model.tokenizer.convert_ids_to_tokens(model.codec.eos_token_id) == "<|im_end|>"
    text = model.generate(Conversation().add_user("What organ pumps blood?"), max_new_tokens=8)
    # The base LLM answers in words of the topic (greedy: "The organ pumps blood."), not noise.
    assert {"heart", "blood"} & set(text.lower().replace(".", " ").split()), text


def _llama_style_tokenizer():
    """An offline word-level tokenizer whose EOS is "</s>" and which adds BOS, like Vicuna's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "USER", "ASSISTANT", ":", "a", "b", "hello", "."]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def test_codec_with_eos_literally_named_s() -> None:
    from radialog.model.llm import TokenCodec

    codec = TokenCodec(_llama_style_tokenizer())
    assert codec.eos_token_id == 2 and codec.prefix == [1]
    assert codec.encode("a </s>b") == [1, 6, 2, 7]
    assert codec.encode_segments("hello <image> a") == [[1, 8], [6]]
    assert codec.decode([8, 6, 2, 7]) == "hello a"


def test_decode_cuts_at_literal_separator(tiny: RadialogModel) -> None:
    ids = tiny.tokenizer("Normal heart size.</s>USER: more", add_special_tokens=False).input_ids
    assert tiny.codec.eos_token_id not in ids  # SmolLM2 spells "</s>" as ordinary tokens
    assert tiny.codec.decode(ids) == "Normal heart size."


def test_frozen_encoder_stays_in_eval_mode() -> None:
    from radialog.model.config import load_named_config

    cfg = load_named_config("tiny")
    cfg.encoder.trainable = False
    model = RadialogModel.from_config(cfg)
    model.train()
    assert not model.encoder.training and model.adapter.training
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.adapter.parameters())
    assert model.classifier_encoder.training  # its own config leaves it trainable


def test_save_in_half_precision_halves_the_file_and_loads_back(tmp_path: Path) -> None:
    model = RadialogModel.from_config("tiny")
    _randomise_trained_parts(model)
    full = model.save_pretrained(tmp_path / "fp32")
    half = model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    full_size = (full / "model.safetensors").stat().st_size
    half_size = (half / "model.safetensors").stat().st_size
    assert half_size < 0.6 * full_size
    loaded = RadialogModel.from_pretrained(half)
    # Weights come back in the model's own dtype, equal to the originals up to fp16 rounding.
    original = model.trained_modules().state_dict()
    for key, value in loaded.trained_modules().state_dict().items():
        assert value.dtype == original[key].dtype, key
        if value.is_floating_point():
            assert torch.allclose(value, original[key].to(torch.float16).to(value.dtype)), key
        else:
            assert torch.equal(value, original[key]), key
