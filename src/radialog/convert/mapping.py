"""Putting renamed source tensors into radialog modules, with shape checks and a report."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from radialog.convert.report import PartReport
from radialog.errors import CheckpointError


def find_prefix(keys: Iterable[str], anchor: str) -> str | None:
    """The prefix before `anchor` in the first key that ends with it (e.g. the vision tower's
    prefix before "encoder.encoder.conv1.weight"), or None."""
    for key in keys:
        if key.endswith(anchor):
            return key[: len(key) - len(anchor)]
    return None


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_into(
    module: nn.Module,
    mapped: dict[str, torch.Tensor],
    part: PartReport,
    *,
    unmatched: Iterable[str] = (),
    allow_missing: Iterable[str] = (),
) -> PartReport:
    """Copy `mapped` (target-key -> tensor) into `module`; shapes must agree exactly.

    Target keys absent from `mapped` are recorded as missing unless listed in `allow_missing`
    (e.g. BatchNorm's `num_batches_tracked`, which old checkpoints may lack). Keys of `mapped`
    that the module does not have are recorded as unmatched, together with `unmatched`.
    """
    target = module.state_dict()
    extra = sorted(k for k in mapped if k not in target)
    with torch.no_grad():
        for key, value in mapped.items():
            if key not in target:
                continue
            dest = target[key]
            if tuple(dest.shape) != tuple(value.shape):
                raise CheckpointError(
                    f"{part.name}: {key} has shape {tuple(value.shape)} in {part.source} but "
                    f"radialog expects {tuple(dest.shape)}"
                )
            dest.copy_(value.to(dest.dtype))
            part.loaded += 1
    optional = set(allow_missing)
    part.missing.extend(sorted(k for k in target if k not in mapped and k not in optional))
    part.unmatched.extend(sorted(set(unmatched)) + extra)
    return part
