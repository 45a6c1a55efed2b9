"""`radialog report` end to end on real images and DICOMs (issue: foundation, "done when")."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from data_paths import SHARED_IMAGES
from radialog import DISCLAIMER
from radialog.cli import main
from radialog.labels import CHEXPERT_LABELS

DICOM_M2 = SHARED_IMAGES / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
DICOM_M1 = SHARED_IMAGES / "Fake_MONOHR1.dcm"
REAL_IMAGES = [SHARED_IMAGES / "00000001_000.png", DICOM_M2, DICOM_M1]

pytestmark = pytest.mark.e2e


def _report_json(path: Path, capsys, *extra: str) -> dict:
    args = ["report", str(path), "--json", "--max-new-tokens", "12", "--threads", "2", *extra]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize("path", REAL_IMAGES, ids=lambda p: p.name[:20])
def test_report_json_shape(path: Path, capsys, caplog):
    if not path.exists():
        pytest.skip(f"{path} not available")
    caplog.set_level(logging.DEBUG)
    # Fake_MONOHR1 declares MONOCHROME1 over MONOCHROME2 pixels: read correctly it is a
    # negative, which the input gate refuses as inverted; --force runs it and says so.
    inverted = path == DICOM_M1
    payload = _report_json(path, capsys, *(["--force"] if inverted else []))
    gate = payload["gate"]
    assert (gate["decision"], gate["forced"]) == (
        ("refuse", True) if inverted else ("accept", False)
    )
    assert set(payload) >= {"findings", "predicted", "report", "model", "disclaimer"}
    assert list(payload["findings"]) == list(CHEXPERT_LABELS)
    assert all(0.0 <= p <= 1.0 for p in payload["findings"].values())
    assert set(payload["predicted"]) <= set(CHEXPERT_LABELS)
    assert isinstance(payload["report"], str)
    assert payload["disclaimer"] == DISCLAIMER
    if path.suffix == ".dcm":
        header = pydicom.dcmread(path, stop_before_pixels=True)
        for identifier in (str(header.PatientName), str(header.PatientID)):
            assert identifier not in json.dumps(payload)
            assert identifier not in caplog.text


def test_bad_files_fail_cleanly(tmp_path: Path, capsys):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    corrupt = tmp_path / "corrupt.png"
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(good)
    corrupt.write_bytes(good.read_bytes()[:60])
    for path in (empty, text, corrupt, tmp_path / "missing.png"):
        code = main(["report", str(path), "--json"])
        captured = capsys.readouterr()
        assert code == 2, path
        assert path.name in captured.err
        assert captured.out == ""
