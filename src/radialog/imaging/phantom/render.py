"""`render_phantom`: findings, seed, size and view -> a synthetic radiograph (uint8)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from radialog.errors import InvalidInputError
from radialog.imaging.phantom.anatomy import MODIFIERS, VIEWS, sample_anatomy
from radialog.imaging.phantom.exposure import expose, sample_exposure
from radialog.imaging.phantom.frontal import PAINTERS, render_frontal_base
from radialog.imaging.phantom.lateral import render_lateral
from radialog.labels import CHEXPERT_LABELS, NO_FINDING, canonical_label

PHANTOM_FINDINGS: tuple[str, ...] = tuple(
    name for name in CHEXPERT_LABELS if name == NO_FINDING or name in MODIFIERS or name in PAINTERS
)


def render_phantom(
    findings: Iterable[str], seed: int, size: int = 512, view: str = "PA"
) -> np.ndarray:
    """Render a synthetic chest radiograph (uint8, size x size) with the given findings.

    findings: CheXpert label names (any case); "No Finding" or an empty list gives a clean
    chest. view: "PA", "AP" or "LATERAL" (any case); a lateral shows the same patient as the
    frontal views of that seed. Deterministic for (findings, seed, size, view); the order of
    findings is irrelevant.
    """
    wanted = _validate(findings, seed, size, view)
    view = view.upper()
    rng_anatomy = np.random.default_rng([seed, 0])
    anatomy = sample_anatomy(rng_anatomy, view)
    exposure = sample_exposure(rng_anatomy, size)
    if view.upper() == "AP":
        anatomy.ctr *= 1.06  # AP projection magnifies the heart
    finding_rngs = {
        name: np.random.default_rng([seed, 1, CHEXPERT_LABELS.index(name)]) for name in wanted
    }
    for name in wanted:
        if name in MODIFIERS:
            MODIFIERS[name](anatomy, finding_rngs[name])
    if view == "LATERAL":
        density = render_lateral(anatomy, wanted, finding_rngs, seed, size)
        return expose(density, exposure, np.random.default_rng([seed, 3]))
    scene = render_frontal_base(anatomy, np.random.default_rng([seed, 2]), size)
    for name in wanted:
        if name in PAINTERS:
            PAINTERS[name](scene, finding_rngs[name])
    return expose(scene.canvas.data, exposure, np.random.default_rng([seed, 3]))


def _validate(findings: Iterable[str], seed: int, size: int, view: str) -> list[str]:
    if isinstance(findings, str):
        findings = [f for f in findings.split(",") if f.strip()]
    names: set[str] = set()
    for item in findings:
        try:
            name = canonical_label(item)
        except ValueError:
            raise InvalidInputError(
                f"unknown finding {item!r}; the phantom renders: {', '.join(PHANTOM_FINDINGS)}"
            ) from None
        if name not in PHANTOM_FINDINGS:
            raise InvalidInputError(
                f"the phantom cannot render {name!r}; it renders: {', '.join(PHANTOM_FINDINGS)}"
            )
        names.add(name)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
    if not 64 <= size <= 4096:
        raise InvalidInputError(f"size must be between 64 and 4096 pixels, got {size}")
    if not isinstance(view, str) or view.upper() not in VIEWS:
        raise InvalidInputError(
            f"view {view!r} is not supported by the phantom; use one of: {', '.join(VIEWS)}"
        )
    return [name for name in CHEXPERT_LABELS if name in names and name != NO_FINDING]
