"""The structured-findings classifier: 14 CheXpert labels from an image feature map.

RaDialog: BioViL-T projected features (128 x 16 x 16 at 488 px) -> avg-pool to 4 x 4 -> flatten
-> fc1 512 -> ReLU -> fc2 14 -> sigmoid > 0.5. Thresholds are per label and saved with the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from radialog.labels import CHEXPERT_LABELS, NUM_LABELS
from radialog.model.config import ClassifierConfig


class FindingsHead(nn.Module):
    """Feature map (B, C, h, w) -> logits (B, 14). Adaptive pooling keeps any input size valid
    (equal to avg_pool2d(4) on RaDialog's 16 x 16 grid)."""

    def __init__(self, cfg: ClassifierConfig, in_channels: int) -> None:
        super().__init__()
        self.pool_grid = cfg.pool_grid
        self.fc1 = nn.Linear(in_channels * cfg.pool_grid**2, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, NUM_LABELS)
        self.dropout = cfg.dropout
        self.register_buffer("thresholds", torch.full((NUM_LABELS,), float(cfg.threshold)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(features, self.pool_grid).flatten(1)
        x = F.dropout(F.relu(self.fc1(x)), self.dropout, self.training)
        return self.fc2(x)

    def set_thresholds(self, thresholds: dict[str, float] | list[float] | torch.Tensor) -> None:
        """Per-label decision thresholds (e.g. tuned on a validation set); saved with the model."""
        if isinstance(thresholds, dict):
            values = [float(thresholds[name]) for name in CHEXPERT_LABELS]
        else:
            values = [float(v) for v in thresholds]
        if len(values) != NUM_LABELS:
            raise ValueError(f"expected {NUM_LABELS} thresholds, got {len(values)}")
        self.thresholds.copy_(torch.tensor(values))
