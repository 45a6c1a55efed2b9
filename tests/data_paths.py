"""Paths the tests share: the bundled example image and the real data in ../shared/data.

The shared data lives beside the repository (never copied into it); tests that need it skip
when it is absent.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_IMAGES = SHARED_DATA / "images"
EXAMPLE_IMAGE = REPO / "src" / "radialog" / "assets" / "example_cxr.png"
# R2Gen's IU X-ray annotation: the train/val/test split and the report text used for metrics.
IU_R2GEN_ANNOTATION = SHARED_DATA / "iu" / "r2gen_annotation.json"
