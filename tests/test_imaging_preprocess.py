"""Preprocessing must equal RaDialog's literal torchvision pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from data_paths import SHARED_IMAGES
from radialog.imaging import example_image_path, read_xray
from radialog.imaging.preprocess import (
    CLASSIFIER_CROP,
    ENCODER_CROP,
    RESIZE,
    XRayTransform,
    to_pil,
    to_uint8,
)


def _reference(pixels: np.ndarray, crop: int) -> torch.Tensor:
    """RaDialog's code, written out: remap_to_uint8 + create_chest_xray_transform_for_inference."""
    array = pixels.astype(float)
    array -= array.min()
    array /= array.max()
    array *= 255
    image = Image.fromarray(array.astype(np.uint8)).convert("L")
    pipeline = transforms.Compose(
        [
            transforms.Resize(512),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
            transforms.Lambda(lambda t: t.repeat(3, 1, 1)),
        ]
    )
    return pipeline(image)


def _real_images() -> list[Path]:
    paths = [example_image_path()]
    if SHARED_IMAGES.is_dir():
        paths += [SHARED_IMAGES / "16747_3_1.jpg", SHARED_IMAGES / "Fake_MONOHR1.dcm"]
    return paths


def test_constants() -> None:
    assert (RESIZE, ENCODER_CROP, CLASSIFIER_CROP) == (512, 448, 488)


@pytest.mark.parametrize("path", _real_images(), ids=lambda p: p.name[:16])
@pytest.mark.parametrize("crop", [ENCODER_CROP, CLASSIFIER_CROP])
def test_matches_literal_torchvision_pipeline(path: Path, crop: int) -> None:
    x = read_xray(path)
    ours = XRayTransform(crop=crop)(x)
    assert ours.shape == (3, crop, crop) and ours.dtype == torch.float32
    assert torch.equal(ours, _reference(x.pixels, crop))
    assert torch.equal(ours[0], ours[2])
    assert 0.0 <= ours.min() and ours.max() <= 1.0


def test_accepts_array_xray_pil_and_path() -> None:
    path = example_image_path()
    x = read_xray(path)
    t = XRayTransform()
    expected = t(x)
    assert torch.equal(t(x.pixels), expected)
    assert torch.equal(t(Image.open(path)), expected)
    assert torch.equal(t(path), expected)


def test_non_square_resizes_shorter_side() -> None:
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(600, 1000)).astype(np.float32)
    out = XRayTransform(resize=512, crop=448)(wide)
    assert out.shape == (3, 448, 448)
    assert torch.equal(out, _reference(wide, 448))


def test_to_uint8_minmax_and_constant() -> None:
    a = np.array([[-5.0, 0.0], [5.0, 15.0]])
    assert to_uint8(a).tolist() == [[0, 63], [127, 255]]  # truncation, like astype
    assert to_uint8(np.full((4, 4), 7.0)).tolist() == np.zeros((4, 4), np.uint8).tolist()
    sixteen = np.array([[0, 1000, 65535]], dtype=np.uint16)
    assert to_uint8(sixteen).tolist() == [[0, 3, 255]]


def test_16bit_image_uses_full_range() -> None:
    # A 16-bit image using a narrow band must be stretched, not clipped to 8 bits.
    band = np.tile(np.linspace(30000, 31000, 600), (600, 1)).astype(np.uint16)
    out = XRayTransform()(band)
    assert len(torch.unique(out)) > 200  # ~230 grey levels survive the centre crop


def test_rejects_colour_array() -> None:
    with pytest.raises(ValueError, match="2-D"):
        XRayTransform()(np.zeros((10, 10, 3)))


@pytest.mark.parametrize(
    ("shape", "resize", "crop"),
    [
        ((512, 512), 512, 448),  # already the size: torchvision returns the image as it is
        ((2048, 2500), 512, 488),
        ((1001, 777), 512, 448),
        ((333, 2000), 512, 511),
        ((97, 131), 72, 64),  # the tiny test model's sizes, upscaled
        ((80, 80), 80, 72),
        ((81, 200), 80, 80),
    ],
)
def test_own_steps_equal_torchvision_for_any_size(shape, resize: int, crop: int) -> None:
    """Resize/CenterCrop/ToTensor are written out without torchvision: bit for bit its output."""
    pixels = np.random.default_rng(sum(shape)).integers(0, 4096, size=shape).astype(np.uint16)
    pipeline = transforms.Compose(
        [transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor()]
    )
    expected = pipeline(to_pil(pixels)).repeat(3, 1, 1)
    assert torch.equal(XRayTransform(resize=resize, crop=crop)(pixels), expected)


def test_preprocessing_does_not_import_torchvision() -> None:
    """torchvision's import (~1 s: it imports torch._dynamo) stays off a report's path."""
    import subprocess
    import sys

    code = (
        "import sys; from radialog.imaging.preprocess import XRayTransform; "
        "from radialog.imaging import example_image_path; "
        "XRayTransform()(example_image_path()); print('torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
