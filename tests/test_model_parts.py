"""Encoders, adapters, classifier head and configs (no LLM needed)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import torch

from radialog.errors import InvalidInputError, ModelNotFoundError
from radialog.labels import NUM_LABELS
from radialog.model.adapters import ProjectAdapter, QFormerAdapter, build_adapter, flatten_patches
from radialog.model.classifier import FindingsHead
from radialog.model.config import (
    AdapterConfig,
    ClassifierConfig,
    RadialogConfig,
    available_configs,
    load_named_config,
)
from radialog.model.encoders import BioVilTEncoder, SmallCNNEncoder, build_encoder

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- configs


def test_named_configs_exist_and_round_trip() -> None:
    assert {"tiny", "radialog-mini", "radialog-v2"} <= set(available_configs())
    for name in ("tiny", "radialog-mini", "radialog-v2"):
        cfg = load_named_config(name)
        assert cfg.name == name
        again = RadialogConfig.from_dict(json.loads(cfg.to_json()))
        assert again == cfg


def test_named_config_contents_match_the_design() -> None:
    mini = load_named_config("radialog-mini")
    assert mini.encoder.kind == "small_cnn" and mini.adapter.kind == "align"
    assert mini.adapter.num_queries == 32 and mini.adapter.cross_attention_freq == 2
    assert mini.llm.source == "smollm2"
    assert mini.llm.lora.r == 8 and mini.llm.lora.target_modules == ["q_proj", "v_proj"]
    v2 = load_named_config("radialog-v2")
    assert (v2.encoder.kind, v2.encoder.crop, v2.adapter.kind) == ("biovil_t", 448, "project")
    assert v2.classifier_encoder.crop == 488 and v2.classifier_encoder.output == "projected"
    assert (v2.llm.lora.r, v2.llm.lora.alpha, v2.llm.lora.target_modules) == (
        128,
        256,
        "all-linear",
    )
    assert mini.max_new_tokens == 300


def test_config_rejects_unknown_keys_and_names() -> None:
    with pytest.raises(InvalidInputError, match="unknown key"):
        RadialogConfig.from_dict({"encoder": {"kind": "small_cnn", "chanels": [8]}})
    with pytest.raises(ModelNotFoundError, match="available"):
        load_named_config("no-such-model")


# ----------------------------------------------------------------------------- encoders


def test_small_cnn_shape_and_size() -> None:
    enc = SmallCNNEncoder([32, 64, 128, 256]).eval()
    out = enc(torch.rand(2, 3, 256, 256))
    assert out.shape == (2, 256, 8, 8)
    assert enc.out_channels == 256
    n_params = sum(p.numel() for p in enc.parameters())
    assert 1_000_000 <= n_params <= 3_000_000


# Prefix counts from hi-ml-multimodal 0.2.2's ImageModel(RESNET50_MULTI_IMAGE, joint 128).
BIOVIL_PREFIX_COUNTS = {
    "encoder.encoder.conv1": 1,
    "encoder.encoder.bn1": 5,
    "encoder.encoder.layer1": 60,
    "encoder.encoder.layer2": 78,
    "encoder.encoder.layer3": 114,
    "encoder.encoder.layer4": 60,
    "encoder.encoder.fc": 2,
    "encoder.backbone_to_vit": 1,
    "encoder.vit_pooler.blocks": 39,
    "encoder.vit_pooler.norm_post": 2,
    "encoder.vit_pooler.type_embed": 1,
    "encoder.missing_previous_emb": 1,
    "projector.model.0": 1,
    "projector.model.1": 5,
    "projector.model.3": 2,
}


def _prefix(key: str) -> str:
    parts = key.split(".")
    if parts[0] == "projector":
        return ".".join(parts[:3])
    if parts[1] == "encoder" or parts[1] == "vit_pooler":
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def test_biovil_t_state_dict_matches_hi_ml_layout() -> None:
    sd = BioVilTEncoder().state_dict()
    assert len(sd) == 372
    assert Counter(_prefix(k) for k in sd) == BIOVIL_PREFIX_COUNTS
    shapes = {
        "encoder.backbone_to_vit.weight": (256, 2048, 1, 1),
        "encoder.missing_previous_emb": (1, 256, 1, 1),
        "encoder.vit_pooler.type_embed": (2, 1, 256),
        "encoder.vit_pooler.blocks.0.attn.proj_q.weight": (256, 256),
        "encoder.vit_pooler.blocks.2.mlp.fc1.weight": (256, 256),
        "encoder.vit_pooler.norm_post.weight": (256,),
        "encoder.encoder.fc.weight": (1000, 2048),
        "projector.model.0.weight": (128, 512, 1, 1),
        "projector.model.1.running_var": (128,),
        "projector.model.3.weight": (128, 128, 1, 1),
        "projector.model.3.bias": (128,),
    }
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    # No bias on q/k/v (BioViL-T) but one on the output projection.
    assert "encoder.vit_pooler.blocks.0.attn.proj_q.bias" not in sd
    assert "encoder.vit_pooler.blocks.0.attn.proj.bias" in sd


def test_biovil_t_output_shapes() -> None:
    enc = BioVilTEncoder(output="patch").eval()
    x = torch.rand(1, 3, 448, 448)
    with torch.no_grad():
        patch = enc(x)
        enc.output = "projected"
        projected = enc(x)
        # With a prior image the ViT pooler computes the difference half.
        enc.output = "patch"
        with_prior = enc(x, previous=torch.rand(1, 3, 448, 448))
    assert patch.shape == (1, 512, 14, 14)
    assert projected.shape == (1, 128, 14, 14)
    assert with_prior.shape == (1, 512, 14, 14)
    # Without a prior the difference half is the learned missing-prior embedding everywhere.
    diff = patch[0, 256:]
    expected = enc.encoder.missing_previous_emb[0].expand(256, 14, 14)
    assert torch.equal(diff, expected)
    assert not torch.allclose(with_prior[0, 256:], expected)
    # Loading its own state dict strictly works (the layout checkpoints use).
    BioVilTEncoder().load_state_dict(enc.state_dict(), strict=True)


def test_build_encoder_kinds() -> None:
    from radialog.model.config import EncoderConfig

    assert isinstance(
        build_encoder(EncoderConfig(kind="small_cnn", channels=[8, 16])), SmallCNNEncoder
    )
    with pytest.raises(ValueError, match="unknown encoder kind"):
        build_encoder(EncoderConfig(kind="vit-xxl"))
    with pytest.raises(ModelNotFoundError):
        build_encoder(EncoderConfig(kind="hf", path="/nonexistent/model"))


def test_hf_vision_encoder_from_local_dir(tmp_path) -> None:
    """A tiny random ViT saved locally: tokens (CLS + grid) come back as a (B, C, h, w) map."""
    from transformers import ViTConfig, ViTModel

    from radialog.model.encoders import HFVisionEncoder

    cfg = ViTConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=64,
        patch_size=16,
    )
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(tmp_path)
    enc = HFVisionEncoder(tmp_path).eval()
    assert enc.out_channels == 16
    assert enc(torch.rand(2, 3, 64, 64)).shape == (2, 16, 4, 4)


# ----------------------------------------------------------------------------- adapters


def test_flatten_is_per_patch() -> None:
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    tokens = flatten_patches(x)
    assert tokens.shape == (2, 4, 3)
    # Token (row 0, col 1) holds that cell's channel vector.
    assert torch.equal(tokens[1, 1], x[1, :, 0, 1])


def test_qformer_shapes_queries_and_cross_attention_layout() -> None:
    cfg = AdapterConfig(
        kind="align",
        num_queries=32,
        hidden_size=64,
        num_layers=4,
        num_heads=4,
        intermediate_size=128,
    )
    q = build_adapter(cfg, vision_width=96, llm_hidden=48, num_patches=49).eval()
    assert isinstance(q, QFormerAdapter)
    assert q.num_image_tokens == 32
    assert q.query_tokens.shape == (1, 32, 64)
    assert [layer.cross_attn is not None for layer in q.layers] == [True, False, True, False]
    assert q.ln_vision.normalized_shape == (96,)
    feats = torch.rand(3, 96, 7, 7)
    assert q(feats).shape == (3, 32, 48)
    assert q.query_states(feats).shape == (3, 32, 64)
    # The output depends on the image (cross-attention is wired in).
    assert not torch.allclose(q(feats)[0], q(torch.rand(1, 96, 7, 7))[0])
    assert abs(float(q.query_tokens.detach().std()) - 0.02) < 0.01


def test_project_adapter_is_mlp2x_gelu_over_all_patches() -> None:
    p = build_adapter(
        AdapterConfig(kind="project"), vision_width=512, llm_hidden=64, num_patches=196
    )
    assert isinstance(p, ProjectAdapter)
    assert p.num_image_tokens == 196
    assert [type(m).__name__ for m in p.mlp] == ["Linear", "GELU", "Linear"]
    assert tuple(p.mlp[0].weight.shape) == (64, 512) and tuple(p.mlp[2].weight.shape) == (64, 64)
    feats = torch.rand(2, 512, 14, 14)
    out = p(feats)
    assert out.shape == (2, 196, 64)
    assert torch.allclose(out[1, 15], p.mlp(feats[1, :, 1, 1]), atol=1e-6)  # 15 = row 1, col 1


# ----------------------------------------------------------------------------- classifier


def test_findings_head_radialog_shape_and_thresholds() -> None:
    head = FindingsHead(ClassifierConfig(pool_grid=4, hidden=512), in_channels=128)
    assert tuple(head.fc1.weight.shape) == (512, 128 * 16)
    logits = head(torch.rand(2, 128, 16, 16))
    assert logits.shape == (2, NUM_LABELS)
    # adaptive pooling on a 16x16 grid equals RaDialog's avg_pool2d(4)
    x = torch.rand(1, 128, 16, 16)
    manual = head.fc2(torch.relu(head.fc1(torch.nn.functional.avg_pool2d(x, 4).flatten(1))))
    assert torch.allclose(head(x), manual, atol=1e-6)
    assert torch.equal(head.thresholds, torch.full((NUM_LABELS,), 0.5))
    head.set_thresholds([0.1 * (i % 5 + 1) for i in range(NUM_LABELS)])
    assert "thresholds" in head.state_dict()
    with pytest.raises(ValueError):
        head.set_thresholds([0.5] * 3)


# `make install` puts the reference implementation beside the venv (not a runtime dependency).
HIML_PATH = os.environ.get(
    "RADIALOG_HIML_PATH", str(Path(__file__).resolve().parents[1] / ".venv" / "himl")
)


@pytest.mark.skipif(
    not (Path(HIML_PATH) / "health_multimodal").is_dir(),
    reason="run `make install` (or set RADIALOG_HIML_PATH to a `pip install --no-deps --target DIR hi-ml-multimodal==0.2.2 timm` dir)",
)
def test_biovil_t_identical_to_hi_ml_multimodal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same keys, shapes and outputs as hi-ml-multimodal's ImageModel (optional, not a dependency)."""
    import sys
    import types

    monkeypatch.syspath_prepend(HIML_PATH)
    # hi-ml's package __init__ imports I/O libraries the model itself does not need.
    for name in ("SimpleITK", "skimage", "skimage.io", "skimage.transform"):
        monkeypatch.setitem(sys.modules, name, sys.modules.get(name) or types.ModuleType(name))
    import health_multimodal.image.model.encoder as hm_encoder
    import health_multimodal.image.model.resnet as hm_resnet
    from health_multimodal.image.model.model import ImageModel
    from health_multimodal.image.model.types import ImageEncoderType

    # No ImageNet download: build the ResNet with random weights.
    monkeypatch.setattr(
        hm_encoder, "resnet50", lambda pretrained=False, **kw: hm_resnet.resnet50(False, **kw)
    )
    ref = ImageModel(
        img_encoder_type=ImageEncoderType.RESNET50_MULTI_IMAGE, joint_feature_size=128
    ).eval()
    ours = BioVilTEncoder("patch").eval()
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(ref_sd) == list(our_sd)
    assert all(ref_sd[k].shape == our_sd[k].shape for k in ref_sd)
    ours.load_state_dict(ref_sd, strict=True)
    x, prev = torch.rand(1, 3, 448, 448), torch.rand(1, 3, 448, 448)
    with torch.no_grad():
        out = ref(x)
        assert torch.allclose(ours(x), out.patch_embeddings, atol=1e-5)
        ref_prev = ref.encoder(x, previous_image=prev, return_patch_embeddings=True)[0]
        assert torch.allclose(ours(x, previous=prev), ref_prev, atol=1e-5)
        ours.output = "projected"
        assert torch.allclose(ours(x), out.projected_patch_embeddings, atol=1e-5)
