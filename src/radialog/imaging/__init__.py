"""Reading, preprocessing and synthesising chest X-ray images.

Import the submodules for the full API; the most used names are re-exported here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from radialog.imaging.io import XRay, read_xray

__all__ = ["XRay", "example_image_path", "read_xray"]


def example_image_path() -> Path:
    """Path of the bundled example radiograph (NIH ChestX-ray14 00000001_000, public domain)."""
    return Path(str(resources.files("radialog") / "assets" / "example_cxr.png"))
