"""Loading a local Hugging Face base LLM directory: plain Llama/Vicuna, original LLaVA-1.5
(`liuhaotian/llava-v1.5-7b`, `model_type` "llava"), half precision and bitsandbytes 8/4-bit.

Original LLaVA directories hold a Llama checkpoint plus LLaVA's own projector weights under a
config that transformers cannot map to a causal LM; radialog only needs the language model, so
such a directory loads as `LlamaForCausalLM` and the multimodal weights are ignored.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from radialog.errors import MissingDependencyError, ModelNotFoundError

log = logging.getLogger(__name__)

# model_type values of the original LLaVA code base (a Llama LM + multimodal extras).
LLAVA_ORIGINAL_TYPES = ("llava", "llava_llama")
QUANTIZATION_MODES = ("8bit", "4bit")


@dataclass
class BaseLLMInfo:
    """What a base LLM directory's config.json says about the language model."""

    path: Path
    model_type: str
    hidden_size: int
    vocab_size: int
    num_hidden_layers: int
    intermediate_size: int | None
    raw: dict[str, Any]

    @property
    def is_llava_original(self) -> bool:
        return self.model_type in LLAVA_ORIGINAL_TYPES and "text_config" not in self.raw


def read_base_config(path: str | Path) -> BaseLLMInfo:
    """Parse `<dir>/config.json`; ModelNotFoundError if the directory is not a usable base LLM."""
    path = Path(path).expanduser()
    cfg_file = path / "config.json"
    if not path.is_dir():
        raise ModelNotFoundError(
            f"base LLM directory {path} does not exist; download the base model "
            "(e.g. lmsys/vicuna-7b-v1.3 or liuhaotian/llava-v1.5-7b) and pass its local path"
        )
    if not cfg_file.is_file():
        raise ModelNotFoundError(f"{path} has no config.json: it is not a Hugging Face model dir")
    try:
        raw = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"cannot read {cfg_file}: {exc}") from exc
    if "text_config" in raw:
        raise ModelNotFoundError(
            f"{path} is a transformers-native multimodal checkpoint ({raw.get('model_type')}); "
            "use the original language-model directory instead (liuhaotian/llava-v1.5-7b or "
            "lmsys/vicuna-7b-v1.3)"
        )
    try:
        return BaseLLMInfo(
            path=path,
            model_type=str(raw.get("model_type", "")),
            hidden_size=int(raw["hidden_size"]),
            vocab_size=int(raw["vocab_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            intermediate_size=int(raw["intermediate_size"]) if "intermediate_size" in raw else None,
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelNotFoundError(f"{cfg_file} lacks a language-model field: {exc}") from exc


def bitsandbytes_config(mode: str, compute_dtype: torch.dtype) -> Any:
    """transformers' BitsAndBytesConfig for "8bit" / "4bit" (NF4); clear errors when
    bitsandbytes or CUDA is missing."""
    if mode not in QUANTIZATION_MODES:
        raise ModelNotFoundError(
            f"unknown quantization {mode!r}; use one of {', '.join(QUANTIZATION_MODES)} or none"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingDependencyError(
            f"{mode} loading needs the bitsandbytes package: `pip install bitsandbytes` "
            "(CUDA GPUs only), or load in bfloat16/float16 instead"
        )
    if not torch.cuda.is_available():
        raise MissingDependencyError(
            f"{mode} loading needs a CUDA GPU (bitsandbytes); on CPU set llm.quantization to "
            "null and llm.dtype to bfloat16 (~14 GB for a 7B model) or float32 (~28 GB)"
        )
    from transformers import BitsAndBytesConfig

    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_causal_lm(path: Path, dtype: torch.dtype, quantization: str | None = None) -> Any:
    """A causal LM from a local HF directory (LLaVA-original dirs load their Llama part)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantization:
        kwargs["quantization_config"] = bitsandbytes_config(quantization, dtype)
        kwargs["device_map"] = {"": 0}
    info = read_base_config(path)
    if info.is_llava_original:
        known = LlamaConfig().to_dict().keys()
        fields = {k: v for k, v in info.raw.items() if k in known and k != "model_type"}
        log.info("%s is an original LLaVA checkpoint: loading its Llama language model", path)
        return LlamaForCausalLM.from_pretrained(path, config=LlamaConfig(**fields), **kwargs)
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def check_quantization(mode: str | None, source_is_hf_dir: bool) -> None:
    """Fail early (before loading gigabytes) when quantized loading cannot work."""
    if not mode:
        return
    if not source_is_hf_dir:
        raise ModelNotFoundError(
            f"{mode} quantization needs a local Hugging Face model directory as llm.source"
        )
    bitsandbytes_config(mode, torch.bfloat16)
