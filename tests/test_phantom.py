"""Phantom radiographs: determinism, variation, and each finding's signature where expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radialog.cli import main
from radialog.errors import InvalidInputError
from radialog.imaging.phantom import PHANTOM_FINDINGS, render_phantom
from radialog.labels import CHEXPERT_LABELS

SIZE = 256  # small renders keep the suite fast; geometry is resolution independent


def _render(findings: list[str], seed: int = 0) -> np.ndarray:
    return render_phantom(findings, seed=seed, size=SIZE).astype(np.int16)


def _changed(finding: str, seed: int, threshold: int = 12) -> np.ndarray:
    return np.abs(_render([finding], seed) - _render([], seed)) > threshold


def _fraction_in(mask: np.ndarray, rows: tuple[float, float], cols: tuple[float, float]) -> float:
    n = mask.shape[0]
    r0, r1 = int(rows[0] * n), int(rows[1] * n)
    c0, c1 = int(cols[0] * n), int(cols[1] * n)
    return mask[r0:r1, c0:c1].sum() / max(mask.sum(), 1)


def test_renders_every_label() -> None:
    assert set(PHANTOM_FINDINGS) == set(CHEXPERT_LABELS)
    img = render_phantom(["Cardiomegaly", "pleural effusion"], seed=3)
    assert img.dtype == np.uint8 and img.shape == (512, 512)
    assert 40 < img.mean() < 220 and img.std() > 30


def test_deterministic_and_order_independent() -> None:
    a = render_phantom(["Edema", "Support Devices"], seed=7, size=SIZE)
    b = render_phantom(["Support Devices", "Edema"], seed=7, size=SIZE)
    assert a.tobytes() == b.tobytes()
    assert (
        render_phantom([], 7, SIZE).tobytes() == render_phantom(["No Finding"], 7, SIZE).tobytes()
    )


def test_seeds_differ() -> None:
    images = [_render([], seed) for seed in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(images[i] - images[j]).mean() > 3


def _heart_width(img: np.ndarray) -> int:
    """Widest bright run around the midline over the rows where both lungs are aerated."""
    n = img.shape[0]
    best = 0
    for row in img[int(0.35 * n) : int(0.75 * n)].astype(float):
        lungs = np.concatenate(
            [row[int(0.15 * n) : int(0.3 * n)], row[int(0.7 * n) : int(0.85 * n)]]
        )
        threshold = (np.median(lungs) + row[n // 2]) / 2
        if row[int(0.16 * n) : int(0.26 * n)].mean() > threshold:
            continue  # a dome (liver) reaches this row: not a heart-only row
        if row[int(0.74 * n) : int(0.84 * n)].mean() > threshold:
            continue
        bright = row > threshold
        left = right = n // 2
        while left > 0 and bright[left - 1]:
            left -= 1
        while right < n - 1 and bright[right + 1]:
            right += 1
        best = max(best, right - left)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cardiomegaly_widens_the_heart(seed: int) -> None:
    normal = _heart_width(_render([], seed))
    big = _heart_width(_render(["Cardiomegaly"], seed))
    assert big > normal * 1.15, (normal, big)


def test_cardiomegaly_geometry_has_ctr_over_half() -> None:
    from radialog.imaging import phantom

    for seed in range(20):
        normal = phantom._sample_anatomy(np.random.default_rng([seed, 0]), "PA")
        assert normal.ctr < 0.5
        phantom._mod_cardiomegaly(normal, np.random.default_rng(seed))
        assert normal.ctr > 0.55


@pytest.mark.parametrize("seed", [0, 5])
def test_findings_change_their_region(seed: int) -> None:
    # (finding, rows, cols, min fraction of changed pixels inside that box)
    expectations = [
        ("Enlarged Cardiomediastinum", (0.0, 0.65), (0.25, 0.75), 0.9),
        ("Cardiomegaly", (0.35, 0.85), (0.2, 0.9), 0.9),
        ("Pleural Effusion", (0.45, 0.95), (0.0, 1.0), 0.9),
        ("Edema", (0.2, 0.85), (0.05, 0.95), 0.9),
        ("Lung Lesion", (0.1, 0.85), (0.05, 0.95), 0.99),
    ]
    for finding, rows, cols, minimum in expectations:
        changed = _changed(finding, seed)
        assert changed.sum() > 20, finding
        assert _fraction_in(changed, rows, cols) >= minimum, finding


@pytest.mark.parametrize("finding", [f for f in PHANTOM_FINDINGS if f != "No Finding"])
def test_every_finding_is_visible_across_seeds(finding: str) -> None:
    for seed in range(3):
        assert _changed(finding, seed).sum() > 15, (finding, seed)


def test_pneumothorax_darkens_and_removes_markings() -> None:
    for seed in range(3):
        diff = _render(["Pneumothorax"], seed) - _render([], seed)
        darker = (diff < -6).sum()
        brighter = (diff > 6).sum()
        assert darker > 2 * brighter  # only the thin pleural line gets brighter


def test_support_devices_are_metal_bright() -> None:
    for seed in range(3):
        with_dev = _render(["Support Devices"], seed)
        base = _render([], seed)
        assert ((with_dev - base) > 40).sum() > 30
        assert with_dev.max() >= base.max()


def test_findings_are_not_given_away_by_mean_brightness() -> None:
    # Exposure varies per seed more than any single finding moves the mean.
    clean = [_render([], s).mean() for s in range(8)]
    spread = np.ptp(clean)
    for finding in ("Cardiomegaly", "Pleural Effusion", "Consolidation"):
        shift = np.mean([_render([finding], s).mean() - clean[s] for s in range(8)])
        assert abs(shift) < spread, finding


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="unknown finding"):
        render_phantom(["Broken Heart"], seed=0)
    with pytest.raises(InvalidInputError, match="lateral"):
        render_phantom([], seed=0, view="LATERAL")
    with pytest.raises(InvalidInputError, match="seed"):
        render_phantom([], seed=-1)
    assert render_phantom([], seed=0, size=128, view="AP").shape == (128, 128)


def test_cli_writes_image_and_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.png"
    code = main(
        [
            "phantom",
            "--findings",
            "Cardiomegaly,Pleural Effusion",
            "--seed",
            "3",
            "--size",
            "128",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    saved = np.asarray(Image.open(out))
    assert saved.tobytes() == render_phantom(["Cardiomegaly", "Pleural Effusion"], 3, 128).tobytes()
    sheet = tmp_path / "sheet.png"
    assert main(["phantom", "--sheet", str(sheet), "--size", "96", "--columns", "7"]) == 0
    assert Image.open(sheet).size == (7 * 96, 2 * (96 + 14))
    assert main(["phantom", "--findings", "Nope", "--out", str(out)]) == 2
    assert "unknown finding" in capsys.readouterr().err
