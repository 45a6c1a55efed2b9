"""The non-LLM parts of a RadialogModel (encoder, adapter, classifier), built without loading an
LLM, and the BioViL-T findings classifier from its PyTorch-Lightning checkpoint.

Module names and construction order match `RadialogModel.trained_modules()`, so the state dict
written here is exactly what `RadialogModel.from_pretrained` loads (strictly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from radialog.convert.mapping import find_prefix, load_into, strip_prefix
from radialog.convert.readers import load_torch_file, tensor_dict
from radialog.convert.report import PartReport
from radialog.errors import CheckpointError
from radialog.imaging.sizes import CLASSIFIER_CROP, RESIZE
from radialog.model.adapters import build_adapter
from radialog.model.classifier import FindingsHead
from radialog.model.config import ClassifierConfig, EncoderConfig, RadialogConfig
from radialog.model.encoders import build_encoder

BIOVIL_ANCHOR = "encoder.encoder.conv1.weight"
# Present in the module but absent from checkpoints written before BatchNorm counted batches, and
# irrelevant in eval mode.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def optional_keys(module: nn.Module) -> list[str]:
    return [k for k in module.state_dict() if k.endswith(OPTIONAL_SUFFIXES)]


def build_image_parts(cfg: RadialogConfig, llm_hidden: int) -> nn.ModuleDict:
    """Seeded construction identical to RadialogModel.__init__ (same RNG order)."""
    from radialog.model.radialog_model import RadialogModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        encoder = build_encoder(cfg.encoder)
        grid = RadialogModel.token_grid(cfg.encoder, encoder)
        adapter = build_adapter(cfg.adapter, encoder.out_channels, llm_hidden, grid[0] * grid[1])
        parts = {"encoder": encoder, "adapter": adapter}
        if cfg.classifier.shared_encoder or cfg.classifier.encoder is None:
            cls_channels = encoder.out_channels
            classifier_encoder = None
        else:
            classifier_encoder = build_encoder(cfg.classifier.encoder)
            cls_channels = classifier_encoder.out_channels
        parts["classifier"] = FindingsHead(cfg.classifier, cls_channels)
        if classifier_encoder is not None:
            parts["classifier_encoder"] = classifier_encoder
    return nn.ModuleDict(parts)


# --------------------------------------------------------------------------------------------
# The findings classifier (RaDialog's LitIGClassifier checkpoint)
# --------------------------------------------------------------------------------------------


@dataclass
class ClassifierCheckpoint:
    """BioViL-T + fc1/fc2 weights from `ChexpertClassifier*.ckpt`, and the dims they imply."""

    path: Path
    encoder: dict[str, torch.Tensor]  # ImageModel naming (encoder.encoder.*, projector.model.*)
    head: dict[str, torch.Tensor]  # fc1.*, fc2.*
    other: list[str]  # source keys that are neither (e.g. the loss's pos_weight)
    joint_feature_size: int
    hidden: int
    pool_grid: int
    num_labels: int

    def config(self) -> ClassifierConfig:
        """RaDialog's classifier setup: its own BioViL-T (488 crop), sized by this checkpoint."""
        return ClassifierConfig(
            shared_encoder=False,
            encoder=EncoderConfig(
                kind="biovil_t",
                output="projected",
                joint_feature_size=self.joint_feature_size,
                resize=RESIZE,
                crop=CLASSIFIER_CROP,
            ),
            pool_grid=self.pool_grid,
            hidden=self.hidden,
        )


def read_classifier(path: Path) -> ClassifierCheckpoint:
    raw = load_torch_file(path)
    if not isinstance(raw, dict) or "state_dict" not in raw:
        raise CheckpointError(
            f"{path} is not a PyTorch-Lightning checkpoint (no 'state_dict'); expected RaDialog's "
            "ChexpertClassifier*.ckpt"
        )
    state = tensor_dict(raw["state_dict"], "state_dict", path)
    prefix = find_prefix(state, "biovil_encoder." + BIOVIL_ANCHOR)
    if prefix is None:
        raise CheckpointError(
            f"{path}: no BioViL-T encoder found (expected keys 'model.biovil_encoder.encoder...')"
        )
    enc_prefix = prefix + "biovil_encoder."
    encoder = strip_prefix(state, enc_prefix)
    head = {
        k[len(prefix) :]: v
        for k, v in state.items()
        if k.startswith((prefix + "fc1.", prefix + "fc2."))
    }
    if set(head) != {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}:
        raise CheckpointError(f"{path}: expected fc1/fc2 weights and biases, found {sorted(head)}")
    other = sorted(
        k for k in state if not k.startswith(enc_prefix) and k[len(prefix) :] not in head
    )
    try:
        joint = int(encoder["projector.model.3.weight"].shape[0])
    except KeyError:
        raise CheckpointError(f"{path}: the BioViL-T projector weights are missing") from None
    fc1_in = int(head["fc1.weight"].shape[1])
    grid = math.isqrt(fc1_in // joint) if fc1_in % joint == 0 else 0
    if grid * grid * joint != fc1_in:
        raise CheckpointError(
            f"{path}: fc1 takes {fc1_in} inputs, not (pool grid)^2 x {joint} projected channels"
        )
    return ClassifierCheckpoint(
        path=path,
        encoder=encoder,
        head=head,
        other=other,
        joint_feature_size=joint,
        hidden=int(head["fc1.weight"].shape[0]),
        pool_grid=grid,
        num_labels=int(head["fc2.weight"].shape[0]),
    )


def load_classifier(parts: nn.ModuleDict, ckpt: ClassifierCheckpoint) -> list[PartReport]:
    """Fill `classifier_encoder` and `classifier` (thresholds stay at the config's value)."""
    enc = parts["classifier_encoder"]
    enc_part = load_into(
        enc,
        ckpt.encoder,
        PartReport("classifier encoder (BioViL-T)", str(ckpt.path)),
        allow_missing=optional_keys(enc),
    )
    head_part = PartReport("classifier head (fc1, fc2)", str(ckpt.path), ignored=list(ckpt.other))
    load_into(parts["classifier"], ckpt.head, head_part, allow_missing=["thresholds"])
    return [enc_part, head_part]
