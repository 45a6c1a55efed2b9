"""Training data for the stages: an in-memory image bank, label targets, instruct JSONL.

Images are preprocessed once with the model's own transform (`XRayTransform(resize, crop)`,
the same as at inference) and kept as float16 single-channel tensors, so an epoch costs no
decoding. Augmentation (optional, training only) draws from the per-sample generator the loop
passes in, which makes it reproducible across a kill and resume.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from radialog.errors import InvalidInputError
from radialog.labels import CHEXPERT_LABELS, NUM_LABELS

log = logging.getLogger(__name__)


def study_image_source(study: Any) -> Any:
    """The frontal image of a `Study` (path), or raise InvalidInputError."""
    image = study.frontal_image()
    if image is None or image.path is None:
        raise InvalidInputError(f"study {study.id}: no local image to train on")
    return image.path


class ImageBank:
    """Preprocessed images (N, 1, crop, crop) float16, indexed like the sources given."""

    def __init__(self, sources: Sequence[Any], resize: int, crop: int, show_progress: bool = False):
        from radialog.imaging.preprocess import XRayTransform

        transform = XRayTransform(resize=resize, crop=crop)
        self.images = torch.empty((len(sources), 1, crop, crop), dtype=torch.float16)
        iterator = sources
        if show_progress:
            from tqdm.auto import tqdm

            iterator = tqdm(sources, desc=f"preprocessing {crop}px", leave=False)
        for i, source in enumerate(iterator):
            self.images[i] = transform(source)[:1].to(torch.float16)

    def __len__(self) -> int:
        return len(self.images)

    def get(
        self, index: int, rng: np.random.Generator | None = None, augment: bool = False
    ) -> torch.Tensor:
        """(3, crop, crop) float32 in [0, 1]; with `augment`, a small random shift and contrast."""
        x = self.images[index].float()
        if augment and rng is not None:
            x = _augment(x, rng)
        return x.expand(3, -1, -1).contiguous()


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    # Mild, anatomy-preserving: translate up to 4 % and scale contrast/brightness by up to 10 %
    # (RaDialog trains without augmentation; the small CPU model overfits without it).
    size = x.shape[-1]
    pad = max(1, int(round(0.04 * size)))
    dx, dy = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
    x = F.pad(x.unsqueeze(0), (pad, pad, pad, pad), mode="replicate")[0]
    x = x[:, dy : dy + size, dx : dx + size]
    contrast, brightness = 1 + rng.uniform(-0.1, 0.1), rng.uniform(-0.05, 0.05)
    mean = x.mean()
    return ((x - mean) * contrast + mean + brightness).clamp(0, 1)


def label_targets(studies: Sequence[Any]) -> torch.Tensor:
    """(N, 14) float targets: 1 where the label is positive; uncertain/blank/None count as 0
    (RaDialog's convention)."""
    out = torch.zeros((len(studies), NUM_LABELS))
    for i, study in enumerate(studies):
        labels = study.labels or {}
        for j, name in enumerate(CHEXPERT_LABELS):
            if labels.get(name) == 1:
                out[i, j] = 1.0
    return out


def log_class_weights(targets: torch.Tensor, floor: float = 0.1) -> torch.Tensor:
    """RaDialog's "log weighting": pos_weight_c = log(N / count_c).

    Guards: a label with no positives gets 1.0 (there is nothing to weight, and log(N/0) is
    infinite); the weight never drops below `floor`, since log(N/N) = 0 would make the loss
    ignore positives of a label present in every image.
    """
    n = targets.shape[0]
    counts = targets.sum(0)
    w = torch.where(counts > 0, torch.log(n / counts.clamp(min=1)), torch.ones_like(counts))
    return w.clamp(min=floor)


def report_text(study: Any) -> str:
    """The report text a stage trains on: findings (RaDialog), else the impression."""
    return (study.findings or study.impression or "").strip()


# --------------------------------------------------------------------------------------------
# Instruct JSONL (LLaVA conversation format)
# --------------------------------------------------------------------------------------------


@dataclass
class InstructSample:
    """One conversation: alternating user/assistant texts, the image reference, the task."""

    turns: list[tuple[str, str]]  # (role "USER"/"ASSISTANT", text)
    image: str | None
    task: str | None = None
    id: str | None = None
    study: str | None = None
    emphasis: list[str] = field(default_factory=list)  # target sentences to weight up


_ROLES = {"human": "USER", "user": "USER", "gpt": "ASSISTANT", "assistant": "ASSISTANT"}


def read_instruct_jsonl(path: str | Path, limit: int | None = None) -> list[InstructSample]:
    """Read LLaVA-format records `{"image", "conversations": [{"from", "value"}, ...]}`.

    Raises InvalidInputError naming the line for malformed records.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(
            f"instruct data {path} not found; build it with `radialog build-instruct`"
        )
    samples: list[InstructSample] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                turns = [(_ROLES[t["from"].lower()], str(t["value"])) for t in rec["conversations"]]
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise InvalidInputError(
                    f"{path}:{lineno}: not a LLaVA conversation record ({exc!r}); expected "
                    '{"image": ..., "conversations": [{"from": "human"|"gpt", "value": ...}]}'
                ) from None
            if not turns or turns[-1][0] != "ASSISTANT":
                raise InvalidInputError(f"{path}:{lineno}: the last turn must be the assistant's")
            image = rec.get("image")
            if isinstance(image, list):
                image = image[0] if image else None
            emphasis = [str(x) for x in rec.get("emphasis") or []]
            samples.append(
                InstructSample(
                    turns, image, rec.get("task"), rec.get("id"), rec.get("study"), emphasis
                )
            )
            if limit is not None and len(samples) >= limit:
                break
    if not samples:
        raise InvalidInputError(f"{path}: no conversations")
    return samples


def resolve_image(ref: str, base: Path, studies_by_id: dict[str, Any] | None = None) -> Any:
    """An instruct record's image: a path (absolute or relative to the JSONL), or a study id."""
    if studies_by_id and ref in studies_by_id:
        return study_image_source(studies_by_id[ref])
    p = Path(ref)
    for candidate in (p, base / p):
        if candidate.is_file():
            return candidate
    raise InvalidInputError(
        f"instruct image {ref!r} not found (as a path, relative to {base}, or as a study id)"
    )


def steps_per_epoch(n: int, batch_size: int, grad_accum: int, world: int = 1) -> int:
    return max(1, math.ceil(math.ceil(n / world / batch_size) / grad_accum))
