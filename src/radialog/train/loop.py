"""The training loop shared by all stages, built on HF `accelerate`.

The same code runs on CPU, one GPU, several GPUs (`accelerate launch`) or DeepSpeed ZeRO-2
(`accelerate launch --use_deepspeed --deepspeed_config_file configs/deepspeed/zero2.json`).

Exact resume: the data order is a pure function of (seed, epoch) and every sample's random
augmentation a pure function of (seed, epoch, index), so the data position is just the number
of micro-batches consumed. A checkpoint holds the trainable weights, optimizer, scheduler, RNG
states (via `Accelerator.save_state`) and `trainer_state.json`; it is written to a temporary
directory and renamed, so a kill never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from radialog.errors import CheckpointError
from radialog.fileio import atomic_write_text
from radialog.train.config import StageConfig, TrainConfig
from radialog.train.logger import MetricsLogger

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"


class StageTask(Protocol):
    """What a stage gives the loop.

    `model` is an nn.Module whose `forward(batch)` returns (loss, {name: float}); going through
    forward keeps DDP/DeepSpeed gradient hooks working. Its trainable parameters train.
    """

    name: str
    model: nn.Module
    selection_metric: str | None  # key of evaluate()'s result to maximise, or None

    def train_data(self) -> Sequence[Any]: ...

    def load_sample(self, index: int, rng: np.random.Generator) -> Any: ...

    def collate(self, samples: list[Any]) -> Any: ...

    def set_train_mode(self, model: nn.Module) -> None: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def save_model(self, model: nn.Module, directory: Path) -> None: ...

    def finalize(self, model: nn.Module, out: Path, best_dir: Path | None) -> dict[str, Any]: ...


@dataclass
class TrainerState:
    """Everything the loop needs to continue exactly where it stopped."""

    stage: str
    step: int = 0  # optimizer steps done
    micro_batches: int = 0  # micro-batches consumed (data position)
    samples: int = 0
    total_steps: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    elapsed_s: float = 0.0
    last_eval: dict[str, float] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> TrainerState:
        return cls(**json.loads(path.read_text()))


@dataclass
class StageResult:
    stage: str
    out: Path
    steps: int
    samples: int
    seconds: float
    final_loss: float | None
    eval: dict[str, float]
    extra: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


# A callback gets (state, loss) after each optimizer step; raising stops training (tests use
# this to simulate a kill).
StepCallback = Callable[[TrainerState, float], None]


class _EpochSampler(Sampler):
    """Yields (epoch, index) for a shuffled, process-sharded, resumable stream of samples."""

    def __init__(
        self,
        n: int,
        seed: int,
        rank: int,
        world: int,
        batch_size: int,
        lengths: Sequence[int] | None = None,
        group_size: int = 50,
    ):
        self.n, self.seed, self.rank, self.world, self.bs = n, seed, rank, world, batch_size
        self.per_rank = n // world if world > 1 else n
        self.batches_per_epoch = math.ceil(self.per_rank / batch_size)
        self.start = 0  # first micro-batch (global count) to produce
        self.lengths = lengths
        self.group = group_size * batch_size

    def epoch_order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        order = perm[self.rank :: self.world][: self.per_rank]
        if self.lengths is not None:
            # Length grouping (HF LengthGroupedSampler): sort within random mega-batches, so a
            # batch pads little and the order stays random and reproducible.
            order = [
                i
                for k in range(0, len(order), self.group)
                for i in sorted(order[k : k + self.group], key=lambda j: -self.lengths[j])
            ]
        return order

    def __iter__(self):
        m = self.start
        while True:  # infinite stream; the loop decides when to stop
            epoch, b = divmod(m, self.batches_per_epoch)
            order = self.epoch_order(epoch)
            yield [(epoch, i) for i in order[b * self.bs : (b + 1) * self.bs]]
            m += 1


class _TaskDataset(Dataset):
    def __init__(self, task: StageTask, seed: int):
        self.task, self.seed = task, seed

    def __len__(self) -> int:
        return len(self.task.train_data())

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        return self.task.load_sample(index, rng)


def _atomic_replace_dir(tmp: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint under OUT/checkpoints (temp dirs are ignored)."""
    root = out / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file() and p.name[5:].isdigit()]
    return max(done, key=lambda p: int(p.name[5:]), default=None)


def _make_scheduler(opt: torch.optim.Optimizer, kind: str, warmup: int, total: int):
    from transformers import get_scheduler

    names = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
    if kind not in names:
        raise CheckpointError(f"unknown scheduler {kind!r}; use cosine, linear or constant")
    return get_scheduler(names[kind], opt, num_warmup_steps=warmup, num_training_steps=total)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # No decay on biases, norms and other 1-D parameters (BLIP-2 / LLaVA convention).
    decay, no_decay = [], []
    for _name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def run_training(
    task: StageTask,
    config: TrainConfig,
    stage_cfg: StageConfig,
    out: Path,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    callbacks: Sequence[StepCallback] = (),
    show_progress: bool = True,
) -> StageResult:
    """Train `task` per `stage_cfg`, writing checkpoints, metrics and the final model to `out`."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=stage_cfg.grad_accum,
    )
    model = task.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise CheckpointError(f"stage {task.name!r}: the model has no trainable parameters")

    data = task.train_data()
    world, rank = accelerator.num_processes, accelerator.process_index
    lengths = task.sample_lengths() if hasattr(task, "sample_lengths") else None
    sampler = _EpochSampler(len(data), config.seed, rank, world, stage_cfg.batch_size, lengths)
    per_epoch = sampler.batches_per_epoch
    total_steps = max_steps or stage_cfg.max_steps
    if not total_steps:
        total_steps = max(1, math.ceil(stage_cfg.epochs * per_epoch / stage_cfg.grad_accum))

    optimizer = torch.optim.AdamW(
        _param_groups(model, stage_cfg.weight_decay), lr=stage_cfg.lr, betas=(0.9, 0.999)
    )
    scheduler = _make_scheduler(
        optimizer, stage_cfg.scheduler, int(stage_cfg.warmup_ratio * total_steps), total_steps
    )
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        # No dataloader goes through prepare(), so DeepSpeed needs the micro-batch size here.
        ds_cfg = accelerator.state.deepspeed_plugin.deepspeed_config
        ds_cfg["train_micro_batch_size_per_gpu"] = stage_cfg.batch_size
        ds_cfg["gradient_accumulation_steps"] = stage_cfg.grad_accum
    model, optimizer = accelerator.prepare(model, optimizer)
    # The scheduler is stepped by us once per optimizer step (accelerate would step it once per
    # process), and checkpointed as a registered object.
    accelerator.register_for_checkpointing(scheduler)

    frozen = {
        n
        for n, p in accelerator.unwrap_model(model).named_parameters(remove_duplicate=False)
        if not p.requires_grad
    }

    def _drop_frozen(models, weights, _output_dir):
        # The frozen base (e.g. the LLM) is not saved in every checkpoint: it is rebuilt from
        # its config at resume. Buffers (BatchNorm statistics) are kept.
        for sd in weights:
            for key in [k for k in sd if k.removeprefix("module.") in frozen]:
                del sd[key]

    accelerator.register_save_state_pre_hook(_drop_frozen)

    state = TrainerState(stage=task.name, total_steps=total_steps)
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            log.warning(
                "--resume: no checkpoint in %s, starting from scratch", out / CHECKPOINT_DIR
            )
        else:
            accelerator.load_state(str(ckpt), strict=False)
            saved = TrainerState.read(ckpt / STATE_FILE)
            if saved.stage != task.name:
                raise CheckpointError(
                    f"{ckpt} is a checkpoint of stage {saved.stage!r}, not {task.name!r}; "
                    "use another --out directory"
                )
            saved.total_steps = total_steps
            state = saved
            log.info("resumed from %s at step %d", ckpt, state.step)

    logger = MetricsLogger(out, enabled=accelerator.is_main_process, resume_step=state.step)
    sampler.start = state.micro_batches
    loader = DataLoader(
        _TaskDataset(task, config.seed),
        batch_sampler=sampler,
        collate_fn=task.collate,
        num_workers=config.num_workers,
        # own generator: creating the iterator must not consume the global RNG (exact resume)
        generator=torch.Generator().manual_seed(config.seed),
    )

    def _evaluate() -> dict[str, float]:
        model.eval()
        with torch.no_grad(), accelerator.autocast():
            metrics = task.evaluate(accelerator.unwrap_model(model))
        task.set_train_mode(model)
        # evaluation must not perturb the training RNG stream: callers restore it
        return metrics

    def _save_checkpoint() -> None:
        accelerator.wait_for_everyone()
        root = out / CHECKPOINT_DIR
        final = root / f"step-{state.step:07d}"
        tmp = root / f".tmp-step-{state.step:07d}"
        if accelerator.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            atomic_write_text(tmp / STATE_FILE, json.dumps(asdict(state), indent=2))
            _atomic_replace_dir(tmp, final)
            done = sorted(
                (p for p in root.glob("step-*") if p.name[5:].isdigit()), key=lambda p: p.name
            )
            for old in done[: -max(1, stage_cfg.keep_checkpoints)]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

    def _maybe_select(metrics: dict[str, float]) -> None:
        key = task.selection_metric
        if not key or key not in metrics or not accelerator.is_main_process:
            return
        value = metrics[key]
        if state.best_metric is None or value > state.best_metric:
            state.best_metric, state.best_step = value, state.step
            tmp = out / ".tmp-best"
            if tmp.exists():
                shutil.rmtree(tmp)
            task.save_model(accelerator.unwrap_model(model), tmp)
            _atomic_replace_dir(tmp, out / "best")
            log.info("new best %s=%.4f at step %d", key, value, state.step)

    if stage_cfg.gradient_checkpointing:
        inner = accelerator.unwrap_model(model)
        if hasattr(inner, "gradient_checkpointing_enable"):
            inner.gradient_checkpointing_enable()
        else:
            log.warning(
                "gradient checkpointing requested but %s has no switch", type(inner).__name__
            )

    eval_every = stage_cfg.eval_every or max(1, per_epoch // stage_cfg.grad_accum)
    task.set_train_mode(model)
    bar = tqdm(
        total=total_steps,
        initial=state.step,
        desc=task.name,
        disable=not (show_progress and accelerator.is_local_main_process),
        dynamic_ncols=True,
    )
    started = time.perf_counter() - state.elapsed_s
    window_t, window_samples = time.perf_counter(), 0
    last_loss: float | None = None
    accum_loss, accum_n, accum_logs = 0.0, 0, {}
    batches = iter(loader)
    while state.step < total_steps:
        batch = next(batches)
        with accelerator.accumulate(model), accelerator.autocast():
            loss, parts = model(batch)
            accelerator.backward(loss)
            if accelerator.sync_gradients and stage_cfg.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), stage_cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        n = _batch_size(batch)
        state.micro_batches += 1
        state.samples += n * world
        window_samples += n * world
        accum_loss += float(loss.detach())
        accum_n += 1
        for k, v in parts.items():
            accum_logs[k] = accum_logs.get(k, 0.0) + float(v)
        if not accelerator.sync_gradients:
            continue
        scheduler.step()
        state.step += 1
        last_loss = accum_loss / accum_n
        logs = {k: v / accum_n for k, v in accum_logs.items()}
        accum_loss, accum_n, accum_logs = 0.0, 0, {}
        now = time.perf_counter()
        state.elapsed_s = now - started
        rate = window_samples / max(now - window_t, 1e-9)
        if state.step % stage_cfg.log_every == 0 or state.step == total_steps:
            logger.log(
                state.step,
                "train",
                {
                    "loss": last_loss,
                    **logs,
                    "lr": scheduler.get_last_lr()[0],
                    "samples_per_s": rate,
                },
                samples=state.samples,
                epoch=state.micro_batches / per_epoch,
                elapsed=state.elapsed_s,
            )
            window_t, window_samples = now, 0
        bar.set_postfix(loss=f"{last_loss:.4f}", samples_s=f"{rate:.1f}")
        bar.update(1)
        if state.step % eval_every == 0 or state.step == total_steps:
            rng = _rng_snapshot()
            metrics = _evaluate()
            _rng_restore(rng)
            if metrics:
                state.last_eval = metrics
                logger.log(
                    state.step,
                    "val",
                    metrics,
                    samples=state.samples,
                    epoch=state.micro_batches / per_epoch,
                    elapsed=state.elapsed_s,
                )
                _maybe_select(metrics)
        if state.step % stage_cfg.save_every == 0 or state.step == total_steps:
            _save_checkpoint()
        for cb in callbacks:
            cb(state, last_loss)
    bar.close()

    extra: dict[str, Any] = {}
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        best_dir = out / "best" if (out / "best").is_dir() else None
        extra = task.finalize(unwrapped, out, best_dir) or {}
        tmp = out / ".tmp-model"
        if tmp.exists():
            shutil.rmtree(tmp)
        task.save_model(unwrapped, tmp)
        _atomic_replace_dir(tmp, out / "model")
    logger.close()
    result = StageResult(
        stage=task.name,
        out=out,
        steps=state.step,
        samples=state.samples,
        seconds=round(state.elapsed_s, 1),
        final_loss=last_loss,
        eval=state.last_eval,
        extra={**extra, "best_metric": state.best_metric, "best_step": state.best_step},
    )
    if accelerator.is_main_process:
        atomic_write_text(
            out / "result.json", json.dumps(result.to_dict(), indent=2, default=float)
        )
    accelerator.wait_for_everyone()
    return result


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.ndim > 0:
                return int(v.shape[0])
            if isinstance(v, list):
                return len(v)
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0]) if isinstance(batch[0], (dict, torch.Tensor)) else len(batch)
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    return 1


def _rng_snapshot() -> dict[str, Any]:
    import random

    snap = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        snap["cuda"] = torch.cuda.get_rng_state_all()
    return snap


def _rng_restore(snap: dict[str, Any]) -> None:
    import random

    torch.set_rng_state(snap["torch"])
    np.random.set_state(snap["numpy"])
    random.setstate(snap["python"])
    if "cuda" in snap:
        torch.cuda.set_rng_state_all(snap["cuda"])
