"""peft LoRA adapter folders (`adapter_config.json` + `adapter_model.bin`): reading, checking
against the base LLM, and writing them in current peft's safetensors layout.

Both releases were saved by old peft versions (v1: a 2023 git commit, v2: 0.4.0). Their weight
keys (`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`, no adapter name) are
the same as today's, but their adapter_config.json carries keys current peft no longer knows
(`enable_lora`, `merge_weights`), so the config is rewritten from its meaningful fields.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from radialog.convert.readers import load_torch_file, tensor_dict
from radialog.convert.report import PartReport
from radialog.errors import CheckpointError, ModelNotFoundError
from radialog.model.base_llm import BaseLLMInfo
from radialog.model.config import LoraSettings

LORA_KEY = re.compile(
    r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.default)?\.weight$"
)
# Which LLM dimension each Llama projection reads (in) and writes (out).
_IN_OUT = {
    "q_proj": ("hidden", "hidden"),
    "k_proj": ("hidden", "kv"),
    "v_proj": ("hidden", "kv"),
    "o_proj": ("hidden", "hidden"),
    "gate_proj": ("hidden", "intermediate"),
    "up_proj": ("hidden", "intermediate"),
    "down_proj": ("intermediate", "hidden"),
}


@dataclass
class LoraCheckpoint:
    path: Path
    config: dict[str, Any]
    lora: dict[str, torch.Tensor]  # LoRA weights, keys normalised to peft's saved form
    extras: dict[str, torch.Tensor]  # other tensors in the file (v1: img_proj_layer)

    @property
    def r(self) -> int:
        return int(self.config["r"])

    def settings(self, default_targets: str | list[str]) -> LoraSettings:
        """The LoRA hyper-parameters for radialog's config (peft's defaults where unset)."""
        return LoraSettings(
            r=self.r,
            alpha=int(self.config.get("lora_alpha", 2 * self.r)),
            dropout=float(self.config.get("lora_dropout", 0.05)),
            target_modules=self.config.get("target_modules") or default_targets,
        )


def read_lora_dir(path: Path) -> LoraCheckpoint:
    """Read a peft adapter folder (`adapter_model.bin` or `.safetensors`)."""
    cfg_file = path / "adapter_config.json"
    if not cfg_file.is_file():
        raise ModelNotFoundError(f"{path} has no adapter_config.json: not a LoRA adapter folder")
    config = json.loads(cfg_file.read_text(encoding="utf-8"))
    if str(config.get("peft_type", "LORA")).upper() != "LORA" or "r" not in config:
        raise CheckpointError(f"{cfg_file} is not a LoRA adapter config")
    if (path / "adapter_model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(path / "adapter_model.safetensors"))
    elif (path / "adapter_model.bin").is_file():
        state = tensor_dict(
            load_torch_file(path / "adapter_model.bin"),
            "adapter weights",
            path / "adapter_model.bin",
        )
    else:
        raise ModelNotFoundError(
            f"{path} has neither adapter_model.bin nor adapter_model.safetensors"
        )
    lora: dict[str, torch.Tensor] = {}
    extras: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = LORA_KEY.match(key)
        if m:
            lora[key.replace(".default.weight", ".weight")] = value
        else:
            extras[key] = value
    if not lora:
        raise CheckpointError(
            f"{path}: no LoRA weights (keys like '...layers.0.self_attn.q_proj.lora_A.weight')"
        )
    return LoraCheckpoint(path, config, lora, extras)


def check_against_base(ckpt: LoraCheckpoint, base: BaseLLMInfo) -> None:
    """Every LoRA matrix must fit the base LLM's layers; raise a CheckpointError that names the
    mismatch (a wrong base model is the usual cause)."""
    raw = base.raw
    heads = int(raw.get("num_attention_heads", 1))
    kv_heads = int(raw.get("num_key_value_heads", heads))
    head_dim = int(raw.get("head_dim") or base.hidden_size // heads)
    dims = {
        "hidden": base.hidden_size,
        "kv": kv_heads * head_dim,
        "intermediate": base.intermediate_size,
    }
    hint = "the base LLM does not match this adapter; pass the base model it was trained on"
    for key, value in ckpt.lora.items():
        m = LORA_KEY.match(key)
        assert m is not None
        layer, module, which = int(m.group(1)), m.group(3), m.group(4)
        if layer >= base.num_hidden_layers:
            raise CheckpointError(
                f"adapter has layer {layer} but base LLM {base.path} has {base.num_hidden_layers} layers: {hint}"
            )
        if module not in _IN_OUT:
            continue
        d_in, d_out = _IN_OUT[module]
        expected = dims[d_in] if which == "A" else dims[d_out]
        got = int(value.shape[1] if which == "A" else value.shape[0])
        if expected is not None and got != expected:
            size = "hidden size" if (d_in if which == "A" else d_out) == "hidden" else "width"
            raise CheckpointError(
                f"adapter {module} expects {size} {got} but base LLM {base.path} has {expected} "
                f"(hidden_size {base.hidden_size}): {hint}"
            )
    for key, value in ckpt.extras.items():
        if (
            key.endswith(("embed_tokens.weight", "lm_head.weight"))
            and value.shape[0] != base.vocab_size
        ):
            raise CheckpointError(
                f"adapter {key} has a vocabulary of {value.shape[0]} but base LLM {base.path} has "
                f"{base.vocab_size}: {hint}"
            )


def write_adapter(ckpt: LoraCheckpoint, out: Path, base_path: Path) -> PartReport:
    """Write `out/adapter_config.json` + `out/adapter_model.safetensors` (current peft format)."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    c = ckpt.config
    config = LoraConfig(
        r=int(c["r"]),
        lora_alpha=c.get("lora_alpha", 8),
        lora_dropout=float(c.get("lora_dropout", 0.0)),
        target_modules=c.get("target_modules"),
        bias=c.get("bias", "none"),
        fan_in_fan_out=bool(c.get("fan_in_fan_out", False)),
        modules_to_save=c.get("modules_to_save"),
        task_type=c.get("task_type") or "CAUSAL_LM",
        base_model_name_or_path=str(base_path),
        inference_mode=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    save_file(
        {k: v.contiguous() for k, v in ckpt.lora.items()}, str(out / "adapter_model.safetensors")
    )
    return PartReport("LLM LoRA adapter", str(ckpt.path), loaded=len(ckpt.lora))
