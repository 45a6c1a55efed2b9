"""RaDialog v1 (the GitHub `weights` release): Vicuna-7B v1.3 + LoRA r=8 on q/v whose adapter
file also holds `img_proj_layer` (Linear 768 -> 4096), the BLIP-2 Q-Former `checkpoint_4.pth`
(LAVIS dict, BERT naming), the BioViL-T findings classifier, and precomputed Q-Former embeddings.

The Q-Former read BioViL-T features through a 1408-d projector that was randomly initialised,
frozen and never saved, and flattened them channels-first (`x.reshape(B, -1, 1408)` on NCHW);
the converted config reproduces the flattening (`adapter.patch_order = "channels_first"`), but the
projector cannot be recovered: exact v1 reproduction uses the released embeddings
(`radialog.convert.PrecomputedEmbeddings`), converted here to safetensors under `embeddings/`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from radialog.convert.embeddings import PrecomputedEmbeddings
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
from radialog.convert.v2 import find_classifier, require_base
from radialog.convert.writer import write_model
from radialog.errors import CheckpointError, InvalidInputError, ModelNotFoundError
from radialog.imaging.sizes import ENCODER_CROP, RESIZE
from radialog.model.base_llm import read_base_config
from radialog.model.config import (
    AdapterConfig,
    EncoderConfig,
    LLMConfig,
    RadialogConfig,
)
from radialog.model.prompt import REPORT_PROMPT_TEMPLATE, findings_text

log = logging.getLogger(__name__)

QFORMER_GLOB = "checkpoint_*.pth"
BIOVIL_GLOB = "biovil_t*.pt"
EMBEDDINGS_DIR = "embeddings"

# LAVIS / BERT Q-Former names -> radialog QFormerAdapter names (query branch only).
_LAYER = r"Qformer\.bert\.encoder\.layer\.(\d+)\."
_RENAMES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Qformer\.bert\.embeddings\.LayerNorm\.(weight|bias)$"), r"query_norm.\1"),
    (re.compile(r"^query_tokens$"), "query_tokens"),
    (re.compile(r"^ln_vision\.(weight|bias)$"), r"ln_vision.\1"),
    (
        re.compile(_LAYER + r"attention\.self\.(query|key|value)\.(weight|bias)$"),
        r"layers.\1.self_attn.\2.\3",
    ),
    (
        re.compile(_LAYER + r"attention\.output\.dense\.(weight|bias)$"),
        r"layers.\1.self_attn.dense.\2",
    ),
    (
        re.compile(_LAYER + r"attention\.output\.LayerNorm\.(weight|bias)$"),
        r"layers.\1.self_attn.norm.\2",
    ),
    (
        re.compile(_LAYER + r"crossattention\.self\.(query|key|value)\.(weight|bias)$"),
        r"layers.\1.cross_attn.\2.\3",
    ),
    (
        re.compile(_LAYER + r"crossattention\.output\.dense\.(weight|bias)$"),
        r"layers.\1.cross_attn.dense.\2",
    ),
    (
        re.compile(_LAYER + r"crossattention\.output\.LayerNorm\.(weight|bias)$"),
        r"layers.\1.cross_attn.norm.\2",
    ),
    (re.compile(_LAYER + r"intermediate_query\.dense\.(weight|bias)$"), r"layers.\1.fc1.\2"),
    (re.compile(_LAYER + r"output_query\.dense\.(weight|bias)$"), r"layers.\1.fc2.\2"),
    (re.compile(_LAYER + r"output_query\.LayerNorm\.(weight|bias)$"), r"layers.\1.ffn_norm.\2"),
]
# Training-only parts: the text FFN, word/position embeddings, the LM/ITC/ITM heads.
_IGNORED = re.compile(
    r"^(Qformer\.cls\.|vision_proj\.|text_proj\.|itm_head\.|temp$"
    r"|Qformer\.bert\.embeddings\.(word_embeddings|position_embeddings|position_ids)"
    r"|" + _LAYER + r"(intermediate|output)\.)"
)


def v1_report_prompt(findings: str | list[str]) -> str:
    """v1's report prompt: v2's text with "Image information: " before the image tokens."""
    text = findings if isinstance(findings, str) else findings_text(findings)
    return "Image information: " + REPORT_PROMPT_TEMPLATE.format(findings=text)


def rename_qformer(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(renamed query-branch tensors, ignored keys, unmatched keys); `visual_encoder.*` excluded."""
    mapped: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    unmatched: list[str] = []
    for key, value in state.items():
        if key.startswith("visual_encoder."):
            continue
        for pattern, target in _RENAMES:
            if pattern.match(key):
                mapped[pattern.sub(target, key)] = value
                break
        else:
            (ignored if _IGNORED.match(key) else unmatched).append(key)
    return mapped, sorted(ignored), sorted(unmatched)


def qformer_settings(
    state: dict[str, torch.Tensor], heads: int | None, path: Path
) -> AdapterConfig:
    """The Q-Former's dimensions, read off its weight shapes (heads: BERT's 64 dims per head)."""
    try:
        queries = state["query_tokens"]
        fc1 = state["Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"]
    except KeyError as exc:
        raise CheckpointError(
            f"{path} is not a RaDialog/BLIP-2 Q-Former checkpoint: missing {exc.args[0]!r}"
        ) from None
    layer_ids = {int(m.group(1)) for k in state if (m := re.match(_LAYER, k))}
    cross = sorted(
        int(m.group(1))
        for k in state
        if (m := re.match(_LAYER + r"crossattention\.self\.query\.weight$", k))
    )
    num_layers = max(layer_ids) + 1
    if not cross or cross[0] != 0:
        raise CheckpointError(f"{path}: expected cross-attention in layer 0, found {cross}")
    freq = cross[1] - cross[0] if len(cross) > 1 else num_layers
    if cross != list(range(0, num_layers, freq)):
        raise CheckpointError(
            f"{path}: cross-attention layers {cross} are not every {freq}th layer"
        )
    hidden = int(queries.shape[-1])
    return AdapterConfig(
        kind="align",
        num_queries=int(queries.shape[1]),
        hidden_size=hidden,
        num_layers=num_layers,
        num_heads=heads or max(1, hidden // 64),
        intermediate_size=int(fc1.shape[0]),
        cross_attention_freq=freq,
        dropout=0.1,
        patch_order="channels_first",
    )


def _find_one(src: Path, given: Path | None, pattern: str, what: str, option: str) -> Path | None:
    if given is not None:
        if not Path(given).exists():
            raise ModelNotFoundError(f"{what} not found: {given}")
        return Path(given)
    found = sorted(src.rglob(pattern))
    if len(found) > 1:
        raise InvalidInputError(
            f"several {what} files under {src}; choose one with {option}: {found}"
        )
    return found[0] if found else None


def _find_lora(src: Path, given: Path | None) -> Path:
    if given is not None:
        return Path(given)
    found = sorted({p.parent for p in src.rglob("adapter_config.json")})
    if len(found) == 1:
        return found[0]
    if not found:
        raise ModelNotFoundError(f"no LoRA folder (adapter_config.json) under {src}")
    raise InvalidInputError(
        f"several LoRA folders under {src} (report and instruct models); choose one with --lora: "
        + ", ".join(str(p) for p in found)
    )


def convert_v1(
    src: Path,
    out: Path,
    *,
    base_llm: Path | None,
    lora_dir: Path | None = None,
    qformer: Path | None = None,
    classifier: Path | None = None,
    biovil: Path | None = None,
    embeddings: list[Path] | None = None,
    qformer_heads: int | None = None,
    dtype: str = "float16",
    quantization: str | None = None,
    force: bool = False,
) -> ConversionReport:
    src = Path(src).expanduser()
    if not src.is_dir():
        raise ModelNotFoundError(f"RaDialog v1 source folder not found: {src}")
    base = read_base_config(require_base(base_llm, "lmsys/vicuna-7b-v1.3"))
    report = ConversionReport("radialog-v1", Path(out))

    lora = read_lora_dir(_find_lora(src, lora_dir))
    check_against_base(lora, base)
    proj_prefix = find_prefix(lora.extras, "img_proj_layer.weight")
    if proj_prefix is None:
        raise CheckpointError(
            f"{lora.path}: the adapter file has no img_proj_layer (expected "
            "base_model.model.model.img_proj_layer.weight); is this a RaDialog v1 LoRA?"
        )
    img_proj = strip_prefix(lora.extras, proj_prefix + "img_proj_layer.")
    extras_left = sorted(
        k for k in lora.extras if not k.startswith(proj_prefix + "img_proj_layer.")
    )
    if img_proj["weight"].shape[0] != base.hidden_size:
        raise CheckpointError(
            f"img_proj_layer outputs {img_proj['weight'].shape[0]} features but base LLM "
            f"{base.path} has hidden size {base.hidden_size}: pass lmsys/vicuna-7b-v1.3 as --base-llm"
        )

    qf_path = _find_one(src, qformer, QFORMER_GLOB, "Q-Former checkpoint", "--qformer")
    if qf_path is None:
        raise ModelNotFoundError(
            f"no Q-Former checkpoint ({QFORMER_GLOB}) under {src}; pass --qformer"
        )
    raw = load_torch_file(qf_path)
    qf_state = tensor_dict(
        raw.get("model", raw) if isinstance(raw, dict) else raw, "model", qf_path
    )
    adapter_cfg = qformer_settings(qf_state, qformer_heads, qf_path)
    if img_proj["weight"].shape[1] != adapter_cfg.hidden_size:
        raise CheckpointError(
            f"img_proj_layer takes {img_proj['weight'].shape[1]} features but the Q-Former has "
            f"hidden size {adapter_cfg.hidden_size}: the LoRA and {qf_path.name} do not belong together"
        )
    vision_width = int(qf_state["ln_vision.weight"].shape[0])

    cls_ckpt = read_classifier(find_classifier(src, classifier))
    cfg = RadialogConfig(
        name="radialog-v1",
        encoder=EncoderConfig(
            kind="biovil_t",
            output="projected",
            joint_feature_size=vision_width,
            resize=RESIZE,
            crop=ENCODER_CROP,
        ),
        adapter=adapter_cfg,
        classifier=cls_ckpt.config(),
        llm=LLMConfig(
            source=str(base.path),
            dtype=dtype,
            quantization=quantization,
            lora=lora.settings(default_targets=["q_proj", "v_proj"]),
            max_length=800,
        ),
        max_new_tokens=300,
        # v1's demo seeded 16 before building; the 1408 projector is still not v1's (never saved).
        seed=16,
    )
    parts = build_image_parts(cfg, base.hidden_size)

    # Report encoder: BioViL-T trunk (separate file) + LAVIS's saved BatchNorm buffers.
    enc = parts["encoder"]
    trunk: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    biovil_path = _find_one(src, biovil, BIOVIL_GLOB, "BioViL-T weights", "--biovil")
    if biovil_path is not None:
        bstate = tensor_dict(load_torch_file(biovil_path), "BioViL-T state dict", biovil_path)
        prefix = find_prefix(bstate, BIOVIL_ANCHOR)
        if prefix is None:
            raise CheckpointError(f"{biovil_path} is not a BioViL-T image model state dict")
        bstate = strip_prefix(bstate, prefix)
        # v1 drops the pretrained projector (its own is 1408 wide and random).
        ignored = sorted(k for k in bstate if k.startswith("projector."))
        trunk = {k: v for k, v in bstate.items() if not k.startswith("projector.")}
    buffers = strip_prefix(qf_state, "visual_encoder.")
    enc_target = enc.state_dict()
    trunk.update({k: v for k, v in buffers.items() if k in enc_target})
    enc_part = PartReport(
        "report encoder (BioViL-T + 1408 projector)",
        f"{biovil_path or '(no --biovil file)'} + {qf_path.name} buffers",
        ignored=ignored,
    )
    load_into(
        enc,
        trunk,
        enc_part,
        unmatched=[f"visual_encoder.{k}" for k in buffers if k not in enc_target],
        allow_missing=optional_keys(enc),
    )
    report.parts.append(enc_part)
    if biovil_path is None:
        report.notes.append(
            "the BioViL-T trunk is not part of the v1 release: pass --biovil "
            "biovil_t_image_model_proj_size_128.pt (microsoft/BiomedVLP-BioViL-T) to encode images"
        )
    report.notes.append(
        "v1's 1408-d projector was random and never saved: images encoded now differ from v1's; "
        "use the precomputed embeddings for exact reproduction"
    )

    mapped, q_ignored, q_unmatched = rename_qformer(qf_state)
    mapped.update({f"proj.{k}": v for k, v in img_proj.items()})
    report.parts.append(
        load_into(
            parts["adapter"],
            mapped,
            PartReport(
                "Q-Former + img_proj_layer", f"{qf_path.name} + {lora.path.name}", ignored=q_ignored
            ),
            unmatched=q_unmatched + extras_left,
        )
    )
    report.parts.extend(load_classifier(parts, cls_ckpt))

    emb_files = list(embeddings) if embeddings is not None else sorted(src.rglob("*.pkl"))
    tables = []
    for path in emb_files:
        table = PrecomputedEmbeddings.load(path)
        if table.shape != (adapter_cfg.num_queries, adapter_cfg.hidden_size):
            raise CheckpointError(
                f"{path}: embeddings are {table.shape}, the Q-Former gives "
                f"({adapter_cfg.num_queries}, {adapter_cfg.hidden_size})"
            )
        tables.append((Path(path).stem, table))
        report.parts.append(
            PartReport(f"precomputed embeddings {Path(path).stem}", str(path), loaded=len(table))
        )

    def write_embeddings(tmp: Path) -> None:
        if tables:
            (tmp / EMBEDDINGS_DIR).mkdir()
        for stem, table in tables:
            table.save(tmp / EMBEDDINGS_DIR / f"{stem}.safetensors")

    write_model(
        out, cfg, parts, report, lora=lora, base_path=base.path, extra=write_embeddings, force=force
    )
    log.info("%s", report.format())
    return report
