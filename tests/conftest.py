"""Fixtures shared by several test modules (paths they share are in data_paths.py)."""

from __future__ import annotations

import pytest

from data_paths import IU_R2GEN_ANNOTATION


@pytest.fixture(scope="session")
def iu():
    """The IU X-ray collection with R2Gen's split when present: parsed and labelled once per
    session (it takes seconds). Modules using it skip when torchxrayvision is not installed."""
    from radialog.data.iu import IUXRay

    return IUXRay(split_file=IU_R2GEN_ANNOTATION if IU_R2GEN_ANNOTATION.is_file() else None)
