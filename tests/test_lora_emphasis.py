"""Widening LoRA keeps the function; emphasis weights change only the loss's weighting."""

from __future__ import annotations

import pytest
import torch

from radialog.model import RadialogModel
from radialog.model.config import LoraSettings
from radialog.model.prompt import report_conversation

REPORT = "The heart is enlarged. The lungs are clear."


@pytest.fixture()
def model():
    m = RadialogModel.from_config("tiny")
    with torch.no_grad():
        for name, p in m.llm.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)  # a non-zero adapter to carry over
    return m.eval()


def _loss(m, **kw):
    conv = report_conversation(["cardiomegaly"]).add_assistant(REPORT)
    torch.manual_seed(0)
    tokens = m.encode_image(torch.rand(1, 3, m.config.encoder.crop, m.config.encoder.crop))
    with torch.no_grad():
        return float(m([conv], image_tokens=[tokens[0]], **kw).loss)


def test_widen_lora_is_exact_and_trains_the_new_modules(model):
    before = _loss(model)
    old_r = model.config.llm.lora.r
    wide = LoraSettings(r=old_r * 4, alpha=64, target_modules="all-linear")
    model.widen_lora(wide)
    assert _loss(model) == pytest.approx(before, abs=1e-5)
    names = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert any("mlp" in n for n in names)  # MLP projections now carry adapters too
    assert model.config.llm.lora == wide
    with pytest.raises(ValueError, match="smaller rank"):
        model.widen_lora(LoraSettings(r=1, alpha=2, target_modules="all-linear"))


def test_widened_model_saves_and_loads(model, tmp_path):
    model.widen_lora(LoraSettings(r=8, alpha=16, target_modules="all-linear"))
    before = _loss(model)
    model.save_pretrained(tmp_path / "m")
    again = RadialogModel.from_pretrained(tmp_path / "m").eval()
    assert again.config.llm.lora.r == 8
    assert _loss(again) == pytest.approx(before, abs=1e-5)


def test_emphasis_weights_the_named_sentence(model):
    plain = _loss(model)
    same = _loss(model, emphasis=[["The heart is enlarged."]], emphasis_weight=1.0)
    assert same == pytest.approx(plain, abs=1e-6)
    heavy = _loss(model, emphasis=[["The heart is enlarged."]], emphasis_weight=50.0)
    light = _loss(model, emphasis=[["The lungs are clear."]], emphasis_weight=50.0)
    assert heavy != pytest.approx(light, abs=1e-3)
    ids, weights = model._target_ids(REPORT, ["The lungs are clear."], 3.0)
    whole = model.codec.encode(REPORT, add_prefix=False) + [model.codec.eos_token_id]
    assert ids == whole  # emphasis never changes the tokens
    assert 3.0 in weights and weights[0] == 1.0 and weights[-1] == 1.0


def test_training_loss_equals_the_hf_loss(model):
    """The loss computed from the target positions' logits only is transformers' own loss."""
    conv = report_conversation(["cardiomegaly"]).add_assistant(REPORT)
    short = report_conversation([]).add_assistant("Normal.")
    tokens = [None, None]
    convs = [conv, short]
    for c in convs:
        c.messages[0].text = c.messages[0].text.replace("<image>", "")
    with torch.no_grad():
        ours = float(model(convs, image_tokens=tokens).loss)
        inputs = model.prepare_inputs(convs, tokens, train=True)
        theirs = float(model.llm(**inputs).loss)
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_half_precision_save_halves_the_adapter_and_loads_back(model, tmp_path):
    from safetensors.torch import load_file

    model.save_pretrained(tmp_path / "full")
    model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    name = "adapter/adapter_model.safetensors"
    half = load_file(str(tmp_path / "half" / name))
    assert half and all(v.dtype == torch.float16 for v in half.values())
    full_size = (tmp_path / "full" / name).stat().st_size
    assert (tmp_path / "half" / name).stat().st_size < full_size
    again = RadialogModel.from_pretrained(tmp_path / "half").eval()
    assert _loss(again) == pytest.approx(_loss(model), abs=2e-2)
