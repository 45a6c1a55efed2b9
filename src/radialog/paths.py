"""Where radialog finds things on disk: its cache folder and the data inside asset packages."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def cache_dir() -> Path:
    """`$RADIALOG_CACHE_DIR`, else `$XDG_CACHE_HOME/radialog` (default `~/.cache/radialog`)."""
    env = os.environ.get("RADIALOG_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "radialog"


def package_dir(name: str) -> Path | None:
    """The directory of an installed package, found WITHOUT importing it (asset packages and
    torchxrayvision are data carriers; importing them is slow or pulls in heavy dependencies).
    None when the package is not installed."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
