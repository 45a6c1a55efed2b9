"""RaDialog v2 (the Hugging Face release): LLaVA-1.5-7B + LoRA r=128 on every linear layer,
BioViL-T patch features (fully fine-tuned) -> mlp2x_gelu projector, and the BioViL-T findings
classifier.

Source folder (a snapshot of ChantalPellegrini/RaDialog-interactive-radiology-report-generation):
`adapter_config.json`, `adapter_model.bin`, `non_lora_trainables.bin` (projector under
`base_model.model.model.mm_projector.{0,2}.*`, the vision tower under
`base_model.model.model.vision_tower.*` in hi-ml ImageModel naming), `config.json` (LlavaConfig),
and `findings_classifier/checkpoints/chexpert_train/ChexpertClassifier.ckpt`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from radialog.convert.image_parts import (
    BIOVIL_ANCHOR,
    build_image_parts,
    load_classifier,
    optional_keys,
    read_classifier,
)
from radialog.convert.lora import check_against_base, read_lora_dir
from radialog.convert.mapping import find_prefix, load_into, strip_prefix
from radialog.convert.readers import load_torch_file, tensor_dict
from radialog.convert.report import ConversionReport, PartReport
from radialog.convert.writer import write_model
from radialog.errors import CheckpointError, InvalidInputError, ModelNotFoundError
from radialog.model.base_llm import read_base_config
from radialog.model.config import load_named_config

log = logging.getLogger(__name__)

NON_LORA = "non_lora_trainables.bin"
CLASSIFIER_GLOB = "*.ckpt"


def find_classifier(src: Path, given: Path | None) -> Path:
    """The classifier checkpoint: `given`, else the single `*.ckpt` under `src`."""
    if given is not None:
        if not given.is_file():
            raise ModelNotFoundError(f"classifier checkpoint not found: {given}")
        return given
    found = sorted(src.rglob(CLASSIFIER_GLOB))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ModelNotFoundError(
            f"no findings-classifier checkpoint (*.ckpt) under {src}; download "
            "ChexpertClassifier.ckpt (a git-lfs file: a plain git clone leaves a pointer) and "
            "pass it with --classifier"
        )
    raise InvalidInputError(
        f"several *.ckpt files under {src}; choose one with --classifier: {found}"
    )


def require_base(base_llm: Path | None, expected: str) -> Path:
    if base_llm is None:
        raise ModelNotFoundError(
            f"--base-llm DIR is required: this checkpoint is a LoRA on {expected}; download that "
            "model and pass its local directory"
        )
    return Path(base_llm).expanduser()


def convert_v2(
    src: Path,
    out: Path,
    *,
    base_llm: Path | None,
    classifier: Path | None = None,
    dtype: str = "bfloat16",
    quantization: str | None = None,
    force: bool = False,
) -> ConversionReport:
    src = Path(src).expanduser()
    if not src.is_dir():
        raise ModelNotFoundError(f"RaDialog v2 source folder not found: {src}")
    base = read_base_config(require_base(base_llm, "liuhaotian/llava-v1.5-7b"))
    report = ConversionReport("radialog-v2", Path(out))

    llava_cfg: dict = {}
    if (src / "config.json").is_file():
        llava_cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
        for field in ("hidden_size", "vocab_size"):
            if field in llava_cfg and int(llava_cfg[field]) != getattr(base, field):
                raise CheckpointError(
                    f"{src / 'config.json'} has {field} {llava_cfg[field]} but base LLM "
                    f"{base.path} has {getattr(base, field)}: pass liuhaotian/llava-v1.5-7b as --base-llm"
                )
        kind = llava_cfg.get("mm_projector_type", "mlp2x_gelu")
        if kind != "mlp2x_gelu":
            raise CheckpointError(f"projector type {kind!r} is not supported (only mlp2x_gelu)")
    else:
        report.notes.append("no config.json in the source; LLaVA settings taken from defaults")

    lora = read_lora_dir(src)
    check_against_base(lora, base)

    nlt_path = src / NON_LORA
    nlt = tensor_dict(load_torch_file(nlt_path), NON_LORA, nlt_path)
    proj_prefix = find_prefix(nlt, "mm_projector.0.weight")
    vt_prefix = find_prefix(nlt, BIOVIL_ANCHOR)
    if proj_prefix is None or vt_prefix is None:
        raise CheckpointError(
            f"{nlt_path} lacks the {'mm_projector' if proj_prefix is None else 'vision tower'} "
            "weights (expected base_model.model.model.mm_projector.0.weight and "
            "base_model.model.model.vision_tower.encoder.encoder.conv1.weight)"
        )
    proj_prefix += "mm_projector."
    projector = strip_prefix(nlt, proj_prefix)
    tower = strip_prefix(nlt, vt_prefix)
    rest = sorted(k for k in nlt if not k.startswith((proj_prefix, vt_prefix)))
    w0 = projector.get("0.weight")
    if w0 is None or "2.weight" not in projector:
        raise CheckpointError(
            f"{nlt_path}: mm_projector must be Linear-GELU-Linear (keys 0.*, 2.*)"
        )
    if "mm_hidden_size" in llava_cfg and int(llava_cfg["mm_hidden_size"]) != w0.shape[1]:
        raise CheckpointError(
            f"mm_hidden_size {llava_cfg['mm_hidden_size']} != projector input {w0.shape[1]}"
        )
    if projector["2.weight"].shape[0] != base.hidden_size:
        raise CheckpointError(
            f"the projector outputs {projector['2.weight'].shape[0]} features but base LLM "
            f"{base.path} has hidden size {base.hidden_size}: wrong base model"
        )

    cls_path = find_classifier(src, classifier)
    cls_ckpt = read_classifier(cls_path)

    cfg = load_named_config("radialog-v2")
    cfg.name = "radialog-v2"
    cfg.adapter.projector_hidden = int(w0.shape[0])
    cfg.classifier = cls_ckpt.config()
    cfg.encoder.joint_feature_size = int(
        tower.get("projector.model.3.weight", torch.empty(128)).shape[0]
    )
    cfg.llm.source = str(base.path)
    cfg.llm.tokenizer = None
    cfg.llm.dtype = dtype
    cfg.llm.quantization = quantization
    cfg.llm.max_length = int(llava_cfg.get("tokenizer_model_max_length") or cfg.llm.max_length)
    cfg.llm.lora = lora.settings(default_targets="all-linear")

    parts = build_image_parts(cfg, base.hidden_size)
    enc = parts["encoder"]
    report.parts.append(
        load_into(
            enc,
            tower,
            PartReport("vision tower (BioViL-T)", str(nlt_path)),
            unmatched=rest,
            allow_missing=optional_keys(enc),
        )
    )
    report.parts.append(
        load_into(
            parts["adapter"],
            {f"mlp.{k}": v for k, v in projector.items()},
            PartReport("mm_projector (mlp2x_gelu)", str(nlt_path)),
        )
    )
    report.parts.extend(load_classifier(parts, cls_ckpt))
    if lora.extras:
        report.parts.append(
            PartReport("adapter extras", str(lora.path), unmatched=sorted(lora.extras))
        )
    write_model(out, cfg, parts, report, lora=lora, base_path=base.path, force=force)
    log.info("%s", report.format())
    return report
