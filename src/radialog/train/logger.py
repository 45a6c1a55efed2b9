"""Training metrics to `metrics.csv` (long format) and TensorBoard (`tb/`)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

log = logging.getLogger(__name__)

FIELDS = ("step", "epoch", "samples", "elapsed_s", "split", "metric", "value")


class MetricsLogger:
    """One row per (step, split, metric). Long format so eval metrics can come and go.

    On resume, rows written after the checkpoint by the interrupted run are dropped, so the
    file reads as one uninterrupted run.
    """

    def __init__(self, out: Path, *, enabled: bool = True, resume_step: int = 0):
        self.enabled = enabled
        self.path = Path(out) / "metrics.csv"
        self._writer = None
        self._tb = None
        if not enabled:
            return
        kept: list[dict[str, str]] = []
        if resume_step > 0 and self.path.is_file():
            with self.path.open(newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) <= resume_step]
        self._file = self.path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=FIELDS)
        self._writer.writeheader()
        self._writer.writerows(kept)
        self._file.flush()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(
                str(Path(out) / "tb"), purge_step=resume_step + 1 if resume_step else None
            )
        except ImportError:  # tensorboard is optional at run time
            log.warning("tensorboard is not installed; writing metrics.csv only")

    def log(
        self,
        step: int,
        split: str,
        metrics: dict[str, float],
        *,
        samples: int,
        epoch: float,
        elapsed: float,
    ) -> None:
        if not self.enabled:
            return
        for name, value in metrics.items():
            self._writer.writerow(
                {
                    "step": step,
                    "epoch": f"{epoch:.4f}",
                    "samples": samples,
                    "elapsed_s": f"{elapsed:.2f}",
                    "split": split,
                    "metric": name,
                    "value": f"{float(value):.6g}",
                }
            )
            if self._tb is not None:
                self._tb.add_scalar(f"{split}/{name}", float(value), step)
        self._file.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()
