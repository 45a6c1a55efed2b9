"""Real IU X-ray report text for metric tests, read at test time from ../shared/data (never copied)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_paths import IU_R2GEN_ANNOTATION


def iu_reports(split: str = "test", limit: int | None = None) -> list[str]:
    if not IU_R2GEN_ANNOTATION.is_file():
        pytest.skip(f"IU X-ray annotation not found at {IU_R2GEN_ANNOTATION}")
    data = json.loads(IU_R2GEN_ANNOTATION.read_text())
    reports = [r["report"] for r in data[split] if r["report"].strip()]
    return reports[:limit] if limit else reports


def shuffled_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """refs = n IU reports; preds = the same reports in a random order (a weak 'system')."""
    refs = iu_reports(limit=n)
    order = np.random.default_rng(seed).permutation(len(refs))
    return [refs[i] for i in order], refs
