"""`phantom-iu`: real IU X-ray reports paired with phantom radiographs drawn from their labels.

Each IU study (labelled by our labeler on its findings, see `radialog.data.iu`) gets one
synthetic PA radiograph from `radialog.imaging.phantom.render_phantom`, seeded by a SHA-256 of
the study id (stable across runs and machines).

Ground truth is exactly what is drawn:
- positive (1) and uncertain (-1) findings are both drawn, because an uncertain mention ("may
  represent atelectasis") still names a finding the report author saw signs of; they become 1.
- findings the phantom cannot draw (not in `PHANTOM_FINDINGS`) are dropped from the ground
  truth: set to None (no information), even when the report mentions them. The report text is
  kept unchanged, so it may mention findings the image does not show.
- every other drawable finding is 0 (absent from the image).
- No Finding is 1 when nothing but Support Devices (or nothing) is drawn, else 0.
`study.meta` keeps `report_labels` (the labeler's vector), `drawn` and `dropped`.

`balanced_train=N` adds N synthetic studies to the train split: phantoms of random findings
sets (0-3 drawable findings, each as likely as any other), with labels and no report text. The
IU reports name rare findings a few dozen times in 2,424 studies; these give the image-only
classifier stage as many positives of a rare finding as of a common one. Stages that need report
text skip them (no findings section).

Splits follow the R2Gen split file when given (studies it does not list are dropped), else a
deterministic hash split (70/10/20). Images are rendered on first use into a cache folder
(`$RADIALOG_CACHE_DIR/phantom-iu`, default `~/.cache/radialog/phantom-iu`; never in the repo)
as PNG files named by study id, size and a hash of the drawn findings, so a change of labels
or renderer version re-renders.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from radialog.data.iu import IUXRay
from radialog.data.study import Study, StudyImage, stable_seed
from radialog.fileio import atomic_open
from radialog.labels import CHEXPERT_LABELS, NO_FINDING, SUPPORT_DEVICES
from radialog.paths import cache_dir as radialog_cache_dir

logger = logging.getLogger(__name__)

# Bump when the mapping from labels to drawn findings changes (invalidates cached PNGs).
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    return radialog_cache_dir() / "phantom-iu"


def phantom_findings() -> frozenset[str]:
    from radialog.imaging.phantom import PHANTOM_FINDINGS

    return frozenset(PHANTOM_FINDINGS)


def phantom_labels(
    report_labels: dict[str, int | None], drawable: Iterable[str]
) -> tuple[list[str], dict[str, int | None], list[str]]:
    """(findings to draw, label vector of the image, report findings that had to be dropped)."""
    drawable = frozenset(drawable)
    mentioned = [n for n in CHEXPERT_LABELS if n != NO_FINDING and report_labels.get(n) in (1, -1)]
    drawn = [n for n in mentioned if n in drawable]
    dropped = [n for n in mentioned if n not in drawable]
    labels: dict[str, int | None] = {}
    for name in CHEXPERT_LABELS:
        if name == NO_FINDING:
            labels[name] = 0 if [d for d in drawn if d != SUPPORT_DEVICES] else 1
        elif name in drawable:
            labels[name] = 1 if name in drawn else 0
        else:
            labels[name] = None
    return drawn, labels, dropped


class PhantomIU:
    """IU reports + phantom images. `studies()` gives `Study` records whose single image path
    points into the cache; `image(study)` / `ensure_image(study)` render on demand."""

    def __init__(
        self,
        split_file: str | Path | None = None,
        cache_dir: str | Path | None = None,
        size: int = 512,
        labeler: Any = "rules",
        iu: IUXRay | None = None,
    ) -> None:
        self.iu = iu or IUXRay(split_file=split_file, labeler=labeler, label_section="findings")
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.size = size

    @functools.cached_property
    def _drawable(self) -> frozenset[str]:
        return phantom_findings()

    def _image_path(self, study_id: str, drawn: list[str]) -> Path:
        digest = hashlib.sha256(f"{FORMAT_VERSION}|{'|'.join(drawn)}".encode()).hexdigest()[:10]
        return self.cache_dir / f"{self.size}" / f"{study_id}-{digest}.png"

    def _images(self, study_id: str, drawn: list[str]) -> list[StudyImage]:
        """A study's one image: the PA phantom of its drawn findings, in the cache."""
        return [StudyImage(path=self._image_path(study_id, drawn), view="PA", image_id=study_id)]

    def studies(self, split: str | None = None, limit: int | None = None) -> list[Study]:
        """Studies with findings (the ones we can label), phantom labels and image paths."""
        out = []
        for base in self.iu.studies(split):
            if base.labels is None:
                continue  # no findings section: nothing to draw from
            drawn, labels, dropped = phantom_labels(base.labels, self._drawable)
            seed = stable_seed("phantom-iu", base.id)
            out.append(
                Study(
                    id=base.id,
                    images=self._images(base.id, drawn),
                    findings=base.findings,
                    impression=base.impression,
                    indication=base.indication,
                    comparison=base.comparison,
                    labels=labels,
                    split=base.split,
                    meta={
                        "dataset": "phantom-iu",
                        "seed": seed,
                        "drawn": drawn,
                        "dropped": dropped,
                        "report_labels": base.labels,
                    },
                )
            )
            if limit is not None and len(out) >= limit:
                break
        return out

    def synthetic_studies(self, n: int, seed: int = 0) -> list[Study]:
        """`n` train studies of random drawable findings sets (see the module docstring)."""
        import random

        rng = random.Random(stable_seed("phantom-iu-balanced", seed))
        options = [
            name for name in CHEXPERT_LABELS if name in self._drawable and name != NO_FINDING
        ]
        out = []
        for i in range(n):
            size = rng.choices((0, 1, 2, 3), weights=(0.15, 0.4, 0.3, 0.15))[0]
            chosen = set(rng.sample(options, size))
            drawn, labels, _ = phantom_labels({name: 1 for name in chosen}, self._drawable)
            study_id = f"SYN{seed}-{i}"
            out.append(
                Study(
                    id=study_id,
                    images=self._images(study_id, drawn),
                    labels=labels,
                    split="train",
                    meta={
                        "dataset": "phantom-iu",
                        "seed": stable_seed("phantom-iu", study_id),
                        "drawn": drawn,
                        "dropped": [],
                        "synthetic": True,
                    },
                )
            )
        return out

    def render(self, study: Study) -> np.ndarray:
        """Render the study's phantom (uint8, 2-D) without touching the cache."""
        from radialog.imaging.phantom import render_phantom

        return render_phantom(
            study.meta["drawn"], seed=study.meta["seed"], size=self.size, view="PA"
        )

    def ensure_image(self, study: Study) -> Path:
        """Path of the cached PNG, rendering it first if needed (atomic write)."""
        path = study.images[0].path
        assert path is not None
        if not path.is_file():
            from PIL import Image

            with atomic_open(path, "wb") as fh:
                Image.fromarray(self.render(study)).save(fh, format="PNG")
        return path

    def image(self, study: Study) -> np.ndarray:
        """The phantom as a uint8 2-D array (from the cache when present)."""
        from PIL import Image

        with Image.open(self.ensure_image(study)) as im:
            return np.asarray(im.convert("L"))

    def image_tensor(self, study: Study, transform: Any = None) -> Any:
        """The phantom through `radialog.imaging.preprocess.XRayTransform` (3 x crop x crop)."""
        if transform is None:
            from radialog.imaging.preprocess import XRayTransform

            transform = XRayTransform()
        return transform(self.image(study))


def load_phantom_iu(
    split: str | None = None,
    render: bool = True,
    limit: int | None = None,
    balanced_train: int = 0,
    **kwargs: Any,
) -> list[Study]:
    """phantom-iu studies; with `render`, every image is rendered into the cache first.
    `balanced_train`: synthetic studies added to the train split (see the module docstring)."""
    dataset = PhantomIU(**kwargs)
    studies = dataset.studies(split, limit=limit)
    if split == "train" and balanced_train:
        studies += dataset.synthetic_studies(int(balanced_train))
    if render:
        todo = [s for s in studies if not (s.images[0].path and s.images[0].path.is_file())]
        if todo:
            logger.info("rendering %d phantom images into %s", len(todo), dataset.cache_dir)
            from rich.progress import track

            for study in track(todo, description="rendering phantoms", transient=True):
                dataset.ensure_image(study)
    return studies
