"""Pieces every stage uses: building the model, freezing, train/eval modes, loading studies."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radialog.errors import InvalidInputError
from radialog.train.config import StageConfig, TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageInputs:
    """What every stage task is built from (`train_stage` makes it once per stage)."""

    radialog: Any
    config: TrainConfig
    stage: StageConfig
    data: Mapping[str, Sequence[Any]] | None = None
    show_progress: bool = True


def build_model(config: TrainConfig, init: Path | None) -> Any:
    """The model a stage starts from: `--init DIR` (an earlier stage's output), else a fresh one
    from the config's model name. LoRA weights stay trainable."""
    from radialog.model import RadialogModel

    if init is not None:
        model = RadialogModel.from_pretrained(init, trainable=True)
        log.info("initialised from %s", init)
        if config.lora is not None:
            from radialog.model.config import LoraSettings

            try:
                settings = LoraSettings(**config.lora)
            except TypeError as exc:
                raise InvalidInputError(f"training config 'lora': {exc}") from None
            model.widen_lora(settings)
    else:
        model = RadialogModel.from_config(config.model)
        if config.lora is not None:
            raise InvalidInputError(
                "training config 'lora' widens the adapters of an --init model; without --init "
                "set the LoRA settings in the model config instead"
            )
    return model


def freeze_all_but(model: nn.Module, trainable: Iterable[nn.Module]) -> int:
    """Set requires_grad only on the given modules' parameters; return their count."""
    for p in model.parameters():
        p.requires_grad_(False)
    n = 0
    seen: set[int] = set()
    for module in trainable:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                p.requires_grad_(True)
                n += p.numel()
    return n


def lora_parameters(llm: nn.Module) -> list[nn.Parameter]:
    return [p for name, p in llm.named_parameters() if "lora_" in name]


def set_train_mode(module: nn.Module) -> None:
    """train() for trainable parts; eval() for fully frozen sub-modules, so a frozen encoder's
    BatchNorm statistics and a frozen LLM's dropout do not change behaviour while training."""
    module.train()
    for child in _frozen_subtrees(module):
        child.eval()


def _frozen_subtrees(module: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []

    def visit(m: nn.Module) -> None:
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            out.append(m)
            return
        for child in m.children():
            visit(child)

    visit(module)
    return out


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def load_studies(
    config: TrainConfig,
    split: str,
    data: Mapping[str, Sequence[Any]] | None = None,
    limit: int | None = None,
) -> list[Any]:
    """Studies of one split with an image and a report; `data` (split -> studies) overrides the
    configured dataset (tests, notebooks)."""
    if data is not None:
        studies = list(data.get(split, []))
    else:
        from radialog.data import load_dataset

        studies = list(load_dataset(config.dataset, split=split, **config.dataset_options))
    studies = [s for s in studies if s.frontal_image() is not None and s.labels is not None]
    if limit is not None:
        studies = studies[:limit]
    if split == "train" and not studies:
        raise InvalidInputError(
            f"dataset {config.dataset!r} has no labelled training studies with images"
        )
    return studies


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
