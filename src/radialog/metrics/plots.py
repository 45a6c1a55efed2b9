"""Per-label F1 bar chart (matplotlib, Agg backend: no display needed), written atomically."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from radialog.fileio import atomic_write_bytes
from radialog.labels import CHEXPERT_LABELS


def plot_per_label_f1(
    series: Mapping[str, Mapping[str, float | None]], path: str | Path, title: str
) -> Path:
    """Grouped horizontal bars: one group per CheXpert label, one bar per series (e.g. task)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(CHEXPERT_LABELS)
    names = list(series)
    height = 0.8 / max(len(names), 1)
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
    try:
        for i, name in enumerate(names):
            values = [series[name].get(label) for label in labels]
            ax.barh(
                y + (i - (len(names) - 1) / 2) * height,
                [0.0 if v is None else v * 100 for v in values],
                height=height,
                label=name,
            )
        ax.set_yticks(y, labels)
        ax.invert_yaxis()  # canonical order top to bottom
        ax.set_xlim(0, 100)
        ax.set_xlabel("F1 (×100)")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
        if len(names) > 1:
            ax.legend(loc="lower right", fontsize="small")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
