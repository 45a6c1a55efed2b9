"""Training stages: `classifier` (findings classifier), `align` (adapter pre-training),
`instruct` (LoRA + adapter on the instruct dataset).

`train_stage(stage, config, out, resume=False, ...)` is the one entry point; the CLI
(`radialog train`) and tests call it. See docs/TRAINING.md for the recipe.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radialog.errors import InvalidInputError
from radialog.train.config import STAGES, StageConfig, TrainConfig, load_train_config
from radialog.train.loop import StageResult, StepCallback, latest_checkpoint

log = logging.getLogger(__name__)

__all__ = [
    "STAGES",
    "StageConfig",
    "StageResult",
    "TrainConfig",
    "latest_checkpoint",
    "load_train_config",
    "train_stage",
]


def _task_class(stage: str) -> Any:
    if stage == "classifier":
        from radialog.train.classifier import ClassifierTask

        return ClassifierTask
    if stage == "align":
        from radialog.train.align import AlignTask

        return AlignTask
    if stage == "instruct":
        from radialog.train.instruct import InstructTask

        return InstructTask
    raise InvalidInputError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")


def train_stage(
    stage: str,
    config: TrainConfig | str | Path,
    out: str | Path,
    resume: bool = False,
    *,
    max_steps: int | None = None,
    init: str | Path | None = None,
    data: Mapping[str, Sequence[Any]] | None = None,
    callbacks: Sequence[StepCallback] = (),
    show_progress: bool = True,
) -> StageResult:
    """Run one stage; the trained model ends up in `OUT/model` (`RadialogModel.save_pretrained`).

    config: a TrainConfig, a config name or a JSON path. init: a saved model to start from
    (usually the previous stage's `OUT/model`). data: split -> Study list, overriding the
    configured dataset. With `resume`, training continues from the newest checkpoint in OUT and
    ends with the same weights as an uninterrupted run.
    """
    import torch

    from radialog.fileio import atomic_write_text
    from radialog.train.common import StageInputs, build_model, seed_everything
    from radialog.train.loop import run_training

    if not isinstance(config, TrainConfig):
        config = load_train_config(config)
    stage_cfg = config.stage(stage)
    out = Path(out)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    init_path = Path(init) if init else None
    if resume and init_path is None:
        saved = out / "run.json"
        if saved.is_file():  # resume starts from the same model the interrupted run started from
            prev = json.loads(saved.read_text()).get("init")
            init_path = Path(prev) if prev else None
    model = build_model(config, init_path)
    inputs = StageInputs(model, config, stage_cfg, data=data, show_progress=show_progress)
    task = _task_class(stage)(inputs)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "run.json",
        json.dumps(
            {
                "stage": stage,
                "init": str(init_path) if init_path else None,
                "max_steps": max_steps,
                "config": config.to_dict(),
            },
            indent=2,
        ),
    )
    seed_everything(config.seed)  # same RNG stream whatever the data loading consumed
    return run_training(
        task,
        config,
        stage_cfg,
        out,
        resume=resume,
        max_steps=max_steps,
        callbacks=callbacks,
        show_progress=show_progress,
    )
