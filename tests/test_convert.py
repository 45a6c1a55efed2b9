"""`radialog convert` on checkpoints fabricated at tiny sizes in the published key layouts and file
formats (torch.save pickles, Lightning / LAVIS dicts, old-peft adapter folders, a numpy pkl).

Each test compares the converted model's outputs with an independent model built directly from
the same weights: BioViL-T + LLaVA projector image tokens, classifier probabilities, a reference
peft model's logits, and transformers' own BLIP-2 Q-Former for v1's Q-Former.
"""

from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from radialog.cli import main as cli_main
from radialog.convert import PrecomputedEmbeddings, convert
from radialog.errors import (
    CheckpointError,
    InvalidInputError,
    ModelNotFoundError,
)
from radialog.model.encoders import BioVilTEncoder
from radialog.model.llm import load_tokenizer
from radialog.model.radialog_model import RadialogModel

torch.set_num_threads(2)
# Two ResNet-50-sized BioViL-T fabrications per release: ~30 s of setup each on a busy CPU.
pytestmark = pytest.mark.slow

HIDDEN = 32
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# ------------------------------------------------------------------------------ fabrication


def _randomise(module: nn.Module, seed: int) -> nn.Module:
    """Non-trivial values for every parameter and BatchNorm statistic (so buffers matter)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=g) * 0.02)
    return module.eval()


def make_base_llm(path: Path, *, hidden: int = HIDDEN, llava: bool = False) -> Path:
    """A tiny Llama saved with save_pretrained (+ tokenizer); `llava` rewrites it the way
    liuhaotian/llava-v1.5-7b is stored (model_type "llava", extra projector weights)."""
    from safetensors.torch import load_file, save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer("smollm2")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    if llava:
        cfg = json.loads((path / "config.json").read_text())
        cfg.update(
            model_type="llava",
            architectures=["LlavaLlamaForCausalLM"],
            mm_hidden_size=1024,
            mm_projector_type="mlp2x_gelu",
            mm_vision_tower="openai/clip-vit-large-patch14-336",
        )
        (path / "config.json").write_text(json.dumps(cfg))
        weights = load_file(str(path / "model.safetensors"))
        weights["model.mm_projector.0.weight"] = torch.zeros(hidden, 1024)
        save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    return path


def make_lora(base: Path, out: Path, *, r: int, targets: list[str], extras=None, seed=3):
    """An old-peft adapter folder (adapter_model.bin, no adapter names, legacy config keys);
    returns the reference PeftModel holding the same weights."""
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig.from_dict(
        {**json.loads((base / "config.json").read_text()), "model_type": "llama"}
    )
    llm = AutoModelForCausalLM.from_pretrained(base, config=cfg)
    peft_model = get_peft_model(
        llm,
        LoraConfig(
            r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules=targets, task_type="CAUSAL_LM"
        ),
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    state = dict(get_peft_model_state_dict(peft_model))
    state.update(extras or {})
    out.mkdir(parents=True)
    torch.save(state, out / "adapter_model.bin")
    (out / "adapter_config.json").write_text(
        json.dumps(
            {
                "base_model_name_or_path": "lmsys/vicuna-7b-v1.3",
                "bias": "none",
                "enable_lora": None,
                "fan_in_fan_out": False,
                "inference_mode": True,
                "lora_alpha": 2 * r,
                "lora_dropout": 0.05,
                "merge_weights": False,
                "modules_to_save": None,
                "peft_type": "LORA",
                "r": r,
                "target_modules": targets,
                "task_type": "CAUSAL_LM",
            }
        )
    )
    return peft_model.eval()


class Classifier(nn.Module):
    """RaDialog's findings classifier as its training code builds it."""

    def __init__(self, joint: int = 8, hidden: int = 16) -> None:
        super().__init__()
        self.biovil_encoder = BioVilTEncoder(output="projected", joint_feature_size=joint)
        self.fc1 = nn.Linear(joint * 16, hidden)
        self.fc2 = nn.Linear(hidden, 14)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.biovil_encoder(x)
        f = F.avg_pool2d(f, f.shape[-1] // 4)  # RaDialog: avg_pool2d(4) on its 16 x 16 grid
        return torch.sigmoid(self.fc2(F.relu(self.fc1(f.flatten(1)))))


def save_lightning(clf: Classifier, path: Path) -> None:
    """A Lightning 1.6-style checkpoint whose hyper_parameters hold a class from a module that
    is not installed (as pytorch_lightning's AttributeDict is here)."""
    fake = types.ModuleType("pytorch_lightning.utilities.parsing")

    class AttributeDict(dict):
        pass

    AttributeDict.__module__ = fake.__name__
    AttributeDict.__qualname__ = "AttributeDict"
    fake.AttributeDict = AttributeDict
    names = ["pytorch_lightning", "pytorch_lightning.utilities", fake.__name__]
    for name in names[:-1]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[fake.__name__] = fake
    try:
        state = {"model." + k: v for k, v in clf.state_dict().items()}
        state["criterion.pos_weight"] = torch.ones(14)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "epoch": 6,
                "pytorch-lightning_version": "1.6.5",
                "state_dict": state,
                "hyper_parameters": AttributeDict(num_classes=14, learning_rate=5e-5),
            },
            path,
        )
    finally:
        for name in names:
            del sys.modules[name]


# ------------------------------------------------------------------------------ RaDialog v2


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2")
    base = make_base_llm(root / "llava-v1.5-7b", llava=True)
    src = root / "release"
    peft_ref = make_lora(base, src, r=4, targets=ALL_LINEAR)
    tower = _randomise(BioVilTEncoder(output="patch"), 1)
    torch.manual_seed(2)
    projector = nn.Sequential(nn.Linear(512, 48), nn.GELU(), nn.Linear(48, HIDDEN)).eval()
    nlt = {
        f"base_model.model.model.vision_tower.{k}": v.to(torch.bfloat16)
        for k, v in tower.state_dict().items()
    }
    nlt.update(
        {
            f"base_model.model.model.mm_projector.{k}": v.to(torch.bfloat16)
            for k, v in projector.state_dict().items()
        }
    )
    torch.save(nlt, src / "non_lora_trainables.bin")
    vocab = json.loads((base / "config.json").read_text())["vocab_size"]
    (src / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llava",
                "hidden_size": HIDDEN,
                "vocab_size": vocab,
                "mm_hidden_size": 512,
                "mm_projector_type": "mlp2x_gelu",
                "tokenizer_model_max_length": 1300,
            }
        )
    )
    clf = _randomise(Classifier(), 4)
    save_lightning(
        clf, src / "findings_classifier/checkpoints/chexpert_train/ChexpertClassifier.ckpt"
    )
    # The released tensors are bf16: the reference uses the same rounded values.
    tower.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in tower.state_dict().items()})
    projector.load_state_dict(
        {k: v.to(torch.bfloat16).float() for k, v in projector.state_dict().items()}
    )
    return types.SimpleNamespace(
        root=root, base=base, src=src, peft=peft_ref, tower=tower, projector=projector, clf=clf
    )


@pytest.fixture(scope="module")
def v2_model(v2):
    out = v2.root / "converted"
    code = cli_main(
        [
            "convert",
            "--from",
            "radialog-v2",
            str(v2.src),
            "--out",
            str(out),
            "--base-llm",
            str(v2.base),
            "--dtype",
            "float32",
        ]
    )
    assert code == 0
    return RadialogModel.from_pretrained(out)


def test_v2_every_key_lands(v2, v2_model) -> None:
    report = json.loads((v2.root / "converted" / "conversion.json").read_text())
    parts = {p["name"]: p for p in report["parts"]}
    for name in (
        "vision tower (BioViL-T)",
        "mm_projector (mlp2x_gelu)",
        "classifier encoder (BioViL-T)",
        "classifier head (fc1, fc2)",
    ):
        assert parts[name]["missing"] == [] and parts[name]["unmatched"] == [], name
    assert parts["vision tower (BioViL-T)"]["loaded"] == len(v2.tower.state_dict()) == 372
    assert parts["classifier head (fc1, fc2)"]["ignored"] == ["criterion.pos_weight"]
    assert parts["LLM LoRA adapter"]["loaded"] == 2 * 2 * len(ALL_LINEAR)
    cfg = v2_model.config
    assert (cfg.adapter.kind, cfg.adapter.projector_hidden, cfg.llm.max_length) == (
        "project",
        48,
        1300,
    )
    assert (
        cfg.classifier.encoder.joint_feature_size,
        cfg.classifier.hidden,
        cfg.classifier.pool_grid,
    ) == (8, 16, 4)
    assert v2_model.is_trained


def test_v2_image_tokens_match_llava_path(v2, v2_model) -> None:
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = v2.projector(v2.tower(x).flatten(2).transpose(1, 2))  # LLaVA's flatten
        got = v2_model.encode_image(x)
    assert got.shape == (1, 4, HIDDEN)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_v2_classifier_probabilities_match(v2, v2_model) -> None:
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        expected = v2.clf(x)
    torch.testing.assert_close(v2_model.predict_findings(x), expected, rtol=1e-4, atol=1e-5)


def test_v2_llm_logits_match_reference_peft(v2, v2_model) -> None:
    ids = torch.tensor([[1, 5, 9, 200, 31, 7]])
    with torch.no_grad():
        expected = v2.peft(input_ids=ids).logits
        got = v2_model.llm(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # The LoRA matters: the bare base LLM gives different logits.
    with torch.no_grad(), v2_model.llm.disable_adapter():
        plain = v2_model.llm(input_ids=ids).logits
    assert not torch.allclose(plain, expected, atol=1e-3)


def test_v2_wrong_base_llm_is_a_clear_error(v2, tmp_path) -> None:
    wrong = make_base_llm(tmp_path / "small", hidden=16)
    with pytest.raises(CheckpointError, match="hidden_size"):
        convert("radialog-v2", v2.src, tmp_path / "o", base_llm=wrong)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        convert("radialog-v2", v2.src, tmp_path / "o", base_llm=tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match="--base-llm"):
        convert("radialog-v2", v2.src, tmp_path / "o", base_llm=None)


def test_cli_error_and_existing_output(v2, tmp_path, capsys) -> None:
    code = cli_main(["convert", "--from", "radialog-v2", str(v2.src), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "--base-llm DIR is required" in capsys.readouterr().err
    with pytest.raises(InvalidInputError, match="--force"):
        convert("radialog-v2", v2.src, v2.root / "converted", base_llm=v2.base)


# ------------------------------------------------------------------------------ RaDialog v1

QF_HIDDEN, QF_WIDTH, QF_QUERIES = 64, 24, 4


def _hf_to_lavis(key: str) -> str:
    key = key.replace("layernorm.", "embeddings.LayerNorm.")
    key = key.replace(".attention.attention.", ".attention.self.")
    key = key.replace(".crossattention.attention.", ".crossattention.self.")
    return "Qformer.bert." + key


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    root = tmp_path_factory.mktemp("v1")
    base = make_base_llm(root / "vicuna-7b-v1.3")
    src = root / "weights"
    torch.manual_seed(5)
    img_proj = nn.Linear(QF_HIDDEN, HIDDEN)
    peft_ref = make_lora(
        base,
        src / "vicuna-7b-img-report" / "checkpoint-11200",
        r=2,
        targets=["q_proj", "v_proj"],
        extras={
            f"base_model.model.model.img_proj_layer.{k}": v
            for k, v in img_proj.state_dict().items()
        },
    )
    qf_cfg = Blip2QFormerConfig(
        hidden_size=QF_HIDDEN,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=96,
        encoder_hidden_size=QF_WIDTH,
        cross_attention_frequency=2,
        vocab_size=30,
    )
    qformer = _randomise(Blip2QFormerModel(qf_cfg), 6)
    query_tokens = torch.randn(1, QF_QUERIES, QF_HIDDEN) * 0.02
    ln_vision = _randomise(nn.LayerNorm(QF_WIDTH), 7)
    model_state = {_hf_to_lavis(k): v for k, v in qformer.state_dict().items()}
    model_state.update(
        {
            "query_tokens": query_tokens,
            "ln_vision.weight": ln_vision.weight.detach(),
            "ln_vision.bias": ln_vision.bias.detach(),
            # Training-only parts of the LAVIS checkpoint.
            "Qformer.bert.embeddings.word_embeddings.weight": torch.randn(30, QF_HIDDEN),
            "Qformer.bert.encoder.layer.0.intermediate.dense.weight": torch.randn(96, QF_HIDDEN),
            "Qformer.cls.predictions.bias": torch.zeros(30),
            "vision_proj.weight": torch.randn(8, QF_HIDDEN),
            "text_proj.weight": torch.randn(8, QF_HIDDEN),
            "itm_head.weight": torch.randn(2, QF_HIDDEN),
            "temp": torch.tensor(0.07),
        }
    )
    trunk = _randomise(BioVilTEncoder(output="projected", joint_feature_size=QF_WIDTH), 8)
    model_state.update(
        {f"visual_encoder.{k}": v for k, v in trunk.named_buffers() if "pos_embed" not in k}
    )
    (src / "pretraining").mkdir(parents=True)
    torch.save(
        {
            "model": model_state,
            "optimizer": {},
            "config": {"run": {"seed": 42}},
            "scaler": None,
            "epoch": 4,
        },
        src / "pretraining" / "checkpoint_4.pth",
    )
    biovil = _randomise(BioVilTEncoder(output="projected", joint_feature_size=128), 9)
    torch.save(biovil.state_dict(), root / "biovil_t_image_model_proj_size_128.pt")
    clf = _randomise(Classifier(), 10)
    save_lightning(clf, src / "chexpert_train" / "ChexpertClassifier-epoch=06-val_f1=0.36.ckpt")
    rng = np.random.default_rng(0)
    table = {
        f"dicom{i}": rng.standard_normal((QF_QUERIES, QF_HIDDEN)).astype(np.float32)
        for i in range(3)
    }
    (src / "embs").mkdir()
    with (src / "embs" / "stage1_embeddings_test.pkl").open("wb") as fh:
        pickle.dump(table, fh)
    out = root / "converted"
    report = convert(
        "radialog-v1",
        src,
        out,
        base_llm=base,
        biovil=root / "biovil_t_image_model_proj_size_128.pt",
        qformer_heads=2,
        dtype="float32",
    )
    return types.SimpleNamespace(
        root=root,
        out=out,
        report=report,
        peft=peft_ref,
        qformer=qformer,
        query_tokens=query_tokens,
        ln_vision=ln_vision,
        img_proj=img_proj.eval(),
        trunk=trunk,
        biovil=biovil,
        clf=clf,
        table=table,
        model=RadialogModel.from_pretrained(out),
    )


def test_v1_report_lists_what_landed(v1) -> None:
    r = v1.report
    qf = r.part("Q-Former + img_proj_layer")
    assert qf.missing == [] and qf.unmatched == []
    assert {"temp", "itm_head.weight", "Qformer.cls.predictions.bias"} <= set(qf.ignored)
    enc = r.part("report encoder (BioViL-T + 1408 projector)")
    # The 1408 projector's weights were never saved: reported as missing, everything else landed.
    assert enc.missing and all(k.startswith("projector.") for k in enc.missing)
    assert enc.unmatched == []
    assert r.part("precomputed embeddings stage1_embeddings_test").loaded == 3
    cfg = v1.model.config
    assert (cfg.adapter.patch_order, cfg.adapter.num_queries, cfg.adapter.num_layers) == (
        "channels_first",
        4,
        4,
    )
    assert cfg.encoder.joint_feature_size == QF_WIDTH


def test_v1_qformer_matches_blip2_with_channels_first_reshape(v1) -> None:
    features = torch.randn(2, QF_WIDTH, 3, 3)
    with torch.no_grad():
        image = v1.ln_vision(features.reshape(2, -1, QF_WIDTH))  # v1: no permute
        expected = v1.qformer(
            query_embeds=v1.query_tokens.expand(2, -1, -1), encoder_hidden_states=image
        ).last_hidden_state
        got = v1.model.adapter.query_states(features)
        tokens = v1.model.adapter(features)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(tokens, v1.img_proj(expected), rtol=1e-4, atol=1e-5)
    # The spatial order would give different tokens: the option is load-bearing.
    v1.model.adapter.patch_order = "spatial"
    try:
        with torch.no_grad():
            assert not torch.allclose(v1.model.adapter.query_states(features), expected, atol=1e-3)
    finally:
        v1.model.adapter.patch_order = "channels_first"


def test_v1_encoder_weights_come_from_biovil_and_lavis_buffers(v1) -> None:
    enc = v1.model.encoder.state_dict()
    torch.testing.assert_close(
        enc["encoder.encoder.conv1.weight"], v1.biovil.state_dict()["encoder.encoder.conv1.weight"]
    )
    # BatchNorm statistics: LAVIS's saved buffers win over the BioViL-T file's.
    key = "encoder.encoder.layer1.0.bn1.running_mean"
    torch.testing.assert_close(enc[key], v1.trunk.state_dict()[key])
    assert v1.model.encode_image(torch.rand(1, 3, 64, 64)).shape == (1, QF_QUERIES, HIDDEN)


def test_v1_precomputed_embeddings_feed_the_projection(v1) -> None:
    converted = PrecomputedEmbeddings.load(
        v1.out / "embeddings" / "stage1_embeddings_test.safetensors"
    )
    original = PrecomputedEmbeddings.load(
        v1.root / "weights" / "embs" / "stage1_embeddings_test.pkl"
    )
    assert sorted(converted) == sorted(original) == ["dicom0", "dicom1", "dicom2"]
    tokens = converted.image_tokens(v1.model, "dicom1")
    with torch.no_grad():
        expected = v1.img_proj(torch.from_numpy(v1.table["dicom1"]))[None]
    torch.testing.assert_close(tokens, expected)
    with pytest.raises(InvalidInputError, match="dicom9"):
        converted["dicom9"]


def test_v1_llm_and_classifier_match(v1) -> None:
    ids = torch.tensor([[1, 50, 9, 300]])
    with torch.no_grad():
        torch.testing.assert_close(
            v1.model.llm(input_ids=ids).logits, v1.peft(input_ids=ids).logits, rtol=1e-4, atol=1e-4
        )
        x = torch.rand(1, 3, 128, 128)
        torch.testing.assert_close(v1.model.predict_findings(x), v1.clf(x), rtol=1e-4, atol=1e-5)


def test_v1_several_lora_folders_need_a_choice(v1, tmp_path) -> None:
    import shutil

    src = tmp_path / "w"
    shutil.copytree(v1.root / "weights", src)
    shutil.copytree(src / "vicuna-7b-img-report", src / "vicuna-7b-img-instruct")
    with pytest.raises(InvalidInputError, match="--lora"):
        convert("radialog-v1", src, tmp_path / "o", base_llm=v1.root / "vicuna-7b-v1.3")
