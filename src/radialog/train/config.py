"""Training configs: one JSON file per recipe, one section per stage.

Named configs live in `configs/train/<name>.json` at the repository root; a path to any JSON
file works too. A stage section only lists what differs from `StageConfig`'s defaults.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radialog.errors import InvalidInputError, ModelNotFoundError

STAGES: tuple[str, ...] = ("classifier", "align", "instruct")

# src/radialog/train/config.py -> repository root
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "train"


@dataclass
class StageConfig:
    """Optimisation and data settings of one stage."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    scheduler: str = "cosine"  # cosine | linear | constant
    warmup_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    save_every: int = 50  # optimizer steps between resumable checkpoints
    keep_checkpoints: int = 2
    eval_every: int | None = None  # optimizer steps; None = once per epoch
    log_every: int = 1
    train_limit: int | None = None  # use only the first N training samples
    val_limit: int | None = None
    gradient_checkpointing: bool = False
    # stage-specific settings (see each stage module's docstring)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """A whole recipe: which model and data, and one StageConfig per stage."""

    name: str
    model: str  # model config name or path, passed to RadialogModel.from_config
    dataset: str = "phantom-iu"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    mixed_precision: str = "no"  # no | bf16 | fp16 (fp16 only on GPUs)
    num_threads: int | None = None  # torch CPU threads; None = torch default
    num_workers: int = 0
    stages: dict[str, StageConfig] = field(default_factory=dict)
    source: str | None = None  # file the config was read from
    # LoRA settings to train with when they differ from the --init model's (wider rank, more
    # target modules): the init's adapters are carried over exactly (see widen_lora).
    lora: dict[str, Any] | None = None

    def stage(self, name: str) -> StageConfig:
        if name not in STAGES:
            raise InvalidInputError(f"unknown stage {name!r}; choose one of: {', '.join(STAGES)}")
        return self.stages.get(name, StageConfig())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json")) if CONFIG_DIR.is_dir() else []


def load_train_config(name_or_path: str | Path) -> TrainConfig:
    """Read a training config by name (`configs/train/<name>.json`) or by path."""
    path = Path(name_or_path)
    if not (path.suffix == ".json" and path.is_file()):
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ModelNotFoundError(
            f"no training config {str(name_or_path)!r}: give a JSON file or one of "
            f"{', '.join(available_configs()) or '(none found in ' + str(CONFIG_DIR) + ')'}"
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: not valid JSON ({exc})") from exc
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict[str, Any], source: str | None = None) -> TrainConfig:
    where = source or "training config"
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}  # "_comment" keys
    stages_raw = raw.pop("stages", {})
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"stages", "source"}
    unknown = set(raw) - known
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}"
        )
    if "model" not in raw:
        raise InvalidInputError(f"{where}: missing 'model' (a model config name such as 'tiny')")
    stage_fields = {f.name for f in dataclasses.fields(StageConfig)}
    stages: dict[str, StageConfig] = {}
    for name, section in stages_raw.items():
        if name not in STAGES:
            raise InvalidInputError(f"{where}: unknown stage {name!r}; stages: {', '.join(STAGES)}")
        section = {k: v for k, v in section.items() if not k.startswith("_")}
        bad = set(section) - stage_fields
        if bad:
            raise InvalidInputError(f"{where}: stage {name!r} has unknown keys {sorted(bad)}")
        stages[name] = StageConfig(**section)
    return TrainConfig(**raw, stages=stages, source=source)
