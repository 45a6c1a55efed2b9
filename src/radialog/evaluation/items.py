"""Dataset studies -> the test items `radialog eval` scores (one image + its report sections).

RaDialog evaluates per image on MIMIC-CXR (a study with a frontal and a lateral image counts
twice) against the findings section; IU X-ray papers usually take one image per study. Both are
available through `images` ("all" or "frontal"); the item id is the study id, plus the image
id when a study contributes more than one image.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from radialog.data.study import Study, StudyImage
from radialog.evaluation.parsing import normalize_view

log = logging.getLogger(__name__)

IMAGE_MODES = ("frontal", "all")


@dataclass(frozen=True)
class EvalItem:
    """One scored unit: an image, the reference sections of its study and its view class."""

    id: str
    study_id: str
    image: StudyImage
    findings: str
    impression: str
    view: str | None  # AP / PA / LATERAL / LL, or None when unknown or another position
    labels: dict[str, int | None] | None = None  # the dataset's own study labels, if any


def build_items(
    studies: Iterable[Study], images: str = "frontal", require_image: bool = True
) -> list[EvalItem]:
    """Items for every study with a findings section and at least one image.

    Studies without findings are skipped (RaDialog's test set is the studies with a findings
    section), as are images whose file is not available. `require_image=False` (model-free
    baselines) keeps such studies as one item whose image path may be None.
    """
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, got {images!r}")
    items: list[EvalItem] = []
    skipped_text = skipped_image = 0
    for study in studies:
        findings = " ".join((study.findings or "").split())
        if not findings:
            skipped_text += 1
            continue
        if images == "frontal":
            first = study.frontal_image()
            chosen = [first] if first is not None else []
        else:
            chosen = list(study.images)
        # MIMIC adapters give paths even for images not downloaded: keep only real files.
        chosen = [im for im in chosen if im.path is not None and Path(im.path).is_file()]
        if not chosen and not require_image:
            chosen = [study.frontal_image() or (study.images or [StudyImage(None)])[0]]
        if not chosen:
            skipped_image += 1
            continue
        for index, image in enumerate(chosen):
            suffix = ""
            if images == "all" and len(chosen) > 1:
                suffix = "/" + (image.image_id or str(index))
            items.append(
                EvalItem(
                    id=f"{study.id}{suffix}",
                    study_id=study.id,
                    image=image,
                    findings=findings,
                    impression=" ".join((study.impression or "").split()),
                    view=normalize_view(image.view),
                    labels=dict(study.labels) if study.labels else None,
                )
            )
    if skipped_text or skipped_image:
        log.info(
            "skipped %d studies without a findings section and %d without an available image",
            skipped_text,
            skipped_image,
        )
    return items
