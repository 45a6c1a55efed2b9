"""`load_dataset(name, split, **kwargs)`: one entry point for every dataset adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from radialog.data.study import Study
from radialog.errors import InvalidInputError


def _iu(split: str | None, **kw: Any) -> list[Study]:
    from radialog.data.iu import load_iu

    return load_iu(split, **kw)


def _mimic(split: str | None, **kw: Any) -> list[Study]:
    from radialog.data.mimic import load_mimic

    if "root" not in kw:
        raise InvalidInputError("the mimic dataset needs root=<mimic-cxr-jpg 2.0.0 folder>")
    return load_mimic(split=split, **kw)


def _phantom_iu(split: str | None, **kw: Any) -> list[Study]:
    from radialog.data.phantom_iu import load_phantom_iu

    return load_phantom_iu(split, **kw)


def _custom(split: str | None, **kw: Any) -> list[Study]:
    from radialog.data.custom import load_custom

    if "path" not in kw:
        raise InvalidInputError("the custom dataset needs path=<file.csv or file.jsonl>")
    return load_custom(split=split, **kw)


# name -> (loader, one-line description). Loaders import their module lazily.
DATASETS: dict[str, tuple[Callable[..., list[Study]], str]] = {
    "iu": (_iu, "IU X-ray reports from torchxrayvision's package data (split_file=, image_root=)"),
    "mimic": (_mimic, "MIMIC-CXR-JPG 2.0.0 local copy (root=, reports_root=, labels=)"),
    "phantom-iu": (_phantom_iu, "IU reports paired with rendered phantom radiographs"),
    "custom": (_custom, "your own CSV/JSONL (path=)"),
}


def load_dataset(name: str, split: str | None = None, **kwargs: Any) -> list[Study]:
    """Studies of a named dataset, optionally one split ("train", "val", "test")."""
    key = name.strip().lower()
    if key not in DATASETS:
        raise InvalidInputError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    try:
        return DATASETS[key][0](split, **kwargs)
    except TypeError as exc:
        # Misspelt keyword arguments are a user error (they come from --dataset-arg).
        if "unexpected keyword argument" in str(exc):
            raise InvalidInputError(f"dataset {name!r}: {exc}") from None
        raise
