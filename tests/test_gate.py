"""The input gate (issue 15): every bundled real chest X-ray and DICOM is accepted, inputs
that are not chest X-rays are refused with the right message on the CLI and the API, and the
override (--force / "force": true) runs the model and records it. The browser side is in
test_gate_web.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from data_paths import EXAMPLE_IMAGE, SHARED_IMAGES
from radialog.errors import RadialogError
from radialog.gate import GATE_DIR, GateConfig, InputGate, NotAChestXRayError, screen
from radialog.imaging import read_xray
from radialog.imaging.phantom import render_phantom
from radialog.model.radialog_model import weights_root

MINI_GATE = weights_root() / "radialog-mini" / GATE_DIR
REAL_CHEST = sorted(
    p
    for p in SHARED_IMAGES.glob("*")
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm") and p.name != "Fake_MONOHR1.dcm"
)
INVERTED_DICOM = SHARED_IMAGES / "Fake_MONOHR1.dcm"


@pytest.fixture(scope="module")
def gate() -> InputGate:
    torch.set_num_threads(1)
    return InputGate.from_pretrained(MINI_GATE)


def _png(path: Path, array: np.ndarray) -> Path:
    mode = "RGB" if array.ndim == 3 else "L"
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode=mode).save(path)
    return path


def _document(side: int = 400) -> np.ndarray:
    im = Image.new("L", (side, side), 250)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=16)
    for i, y in enumerate(range(20, side - 20, 26)):
        if i % 5 == 0:
            draw.rectangle((20, y, side - 40, y + 18), outline=0, width=2)
        else:
            draw.text((20, y), "Referral form: patient name, date, signature", fill=0, font=font)
    return np.asarray(im)


def _upright_chest() -> np.ndarray:
    return np.asarray(read_xray(EXAMPLE_IMAGE).pixels, dtype=np.float32)


def non_chest_images(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (PNG file, the words its refusal message must contain)."""
    rng = np.random.default_rng(0)
    chest = _upright_chest()
    files = {
        "1x1 pixel": (np.full((1, 1), 128), "too small"),
        "flat grey": (np.full((256, 256), 128), "blank"),
        "RGB noise": (rng.integers(0, 256, (256, 256, 3)), "colour photograph"),
        "grey noise": (rng.integers(0, 256, (256, 256)), "does not look like a chest X-ray"),
        "scanned form": (_document(), "document"),
        "inverted radiograph": (255 - chest, "inverted"),
        "upside-down radiograph": (chest[::-1], "rotated or upside-down"),
        "radiograph on its side": (np.rot90(chest), "rotated or upside-down"),
    }
    return {
        name: (_png(tmp_path / f"{i}.png", arr), words)
        for i, (name, (arr, words)) in enumerate(files.items())
    }


# ---------------------------------------------------------------- the gate itself


def test_the_embedded_gate_is_small_and_described() -> None:
    size = sum(p.stat().st_size for p in MINI_GATE.iterdir())
    assert size < 300_000
    cfg = GateConfig.from_dict(json.loads((MINI_GATE / "config.json").read_text()))
    assert "PneumoniaMNIST" in cfg.trained_on["chest"]
    assert "never seen" in cfg.trained_on


@pytest.mark.parametrize("path", REAL_CHEST, ids=lambda p: p.name[:24])
def test_every_bundled_real_chest_xray_is_accepted(gate, path: Path) -> None:
    result = gate.check(read_xray(path))
    assert result.decision == "accept", (path.name, result)
    assert result.score >= gate.config.accept_at


def test_the_example_image_is_accepted(gate) -> None:
    assert gate.check(read_xray(EXAMPLE_IMAGE)).decision == "accept"


def test_the_wrongly_declared_monochrome1_dicom_is_refused_as_inverted(gate) -> None:
    if not INVERTED_DICOM.exists():
        pytest.skip("Fake_MONOHR1.dcm not available")
    # Read correctly (MONOCHROME1 inverted), its stored MONOCHROME2 pixels become a negative.
    result = gate.check(read_xray(INVERTED_DICOM))
    assert result.decision == "refuse" and result.reason == "inverted"
    assert "PhotometricInterpretation" in result.message


@pytest.mark.parametrize("view", ["PA", "AP", "LATERAL"])
def test_phantoms_frontal_and_lateral_are_accepted(gate, view: str) -> None:
    for seed in range(5):
        image = render_phantom(["Cardiomegaly"] if seed % 2 else [], 900 + seed, 256, view)
        assert gate.check(image.astype(np.float32)).decision == "accept", (view, seed)


def test_paediatric_chest_films_are_accepted(gate) -> None:
    from radialog.gate.data import pneumoniamnist

    images = pneumoniamnist("test")[:100]
    if not images:
        pytest.skip("PneumoniaMNIST not available")
    accepted = sum(gate.check(a).decision == "accept" for a in images)
    assert accepted >= 98


def test_non_chest_images_are_refused_with_the_reason(gate, tmp_path: Path) -> None:
    for name, (path, words) in non_chest_images(tmp_path).items():
        result = gate.check(read_xray(path))
        assert result.decision == "refuse", (name, result)
        assert words in result.message, (name, result.message)


def test_photographs_are_refused(gate) -> None:
    skdata = pytest.importorskip("skimage.data")
    for name in ("camera", "coins", "moon", "astronaut", "coffee", "page", "text"):
        img = np.asarray(getattr(skdata, name)())
        gray = img if img.ndim == 2 else np.asarray(Image.fromarray(img).convert("L"))
        assert gate.check(gray.astype(np.float32)).decision == "refuse", name


def test_the_gate_is_fast(gate) -> None:
    import time

    xray = read_xray(EXAMPLE_IMAGE)
    gate.check(xray)
    t0 = time.perf_counter()
    for _ in range(20):
        gate.check(xray)
    assert (time.perf_counter() - t0) / 20 < 0.05  # 20 ms is the target; slack for CI


def test_save_and_load_round_trip(gate, tmp_path: Path) -> None:
    gate.save_pretrained(tmp_path / "g")
    again = InputGate.from_pretrained(tmp_path / "g")
    x = np.random.default_rng(1).random((3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(gate.probabilities(x), again.probabilities(x), atol=1e-6)
    assert InputGate.for_model_dir(tmp_path) is None  # no gate/ folder: gate off
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(RadialogError, match="not a saved input gate"):
        InputGate.from_pretrained(tmp_path / "broken")


def test_screen_raises_unless_forced(gate, tmp_path: Path) -> None:
    noise = read_xray(non_chest_images(tmp_path)["RGB noise"][0])
    with pytest.raises(NotAChestXRayError) as err:
        screen(gate, noise, name="image file x.png")
    assert err.value.exit_code == 2
    assert "--force" in str(err.value) and "colour photograph" in str(err.value)
    forced = screen(gate, noise, force=True)
    assert forced.decision == "refuse" and forced.forced
    assert screen(None, noise).decision == "off"  # a model without a gate
    assert screen(gate, read_xray(EXAMPLE_IMAGE), force=True).forced is False


def test_unsure_images_are_warned_with_the_score(gate) -> None:
    from radialog.commands.report import format_report
    from radialog.gate import gate_notice

    result = gate.decide(np.array([0.3, 0.05, 0.05, 0.1, 0.5]))
    assert (result.decision, result.reason) == ("warn", "other")
    assert not result.refused
    line = gate_notice(result.to_dict())
    assert "WARNING" in line and "score 0.30" in line
    payload = {
        "model": "m",
        "findings": {},
        "predicted": [],
        "report": "r",
        "disclaimer": "d",
        "gate": result.to_dict(),
    }
    assert "score 0.30" in format_report(payload)
    assert gate_notice(gate.decide(np.array([0.9, 0.02, 0.02, 0.02, 0.04])).to_dict()) is None


def test_a_saved_dialog_records_the_override(tiny, gate, tmp_path: Path) -> None:
    from radialog.chat import Session

    noise = read_xray(non_chest_images(tmp_path)["grey noise"][0])
    session = Session(tiny, noise, repair=False, gate=screen(gate, noise, force=True))
    session.report()
    assert session.report_data["gate"]["forced"] is True
    assert session.to_dict()["gate"]["forced"] is True
    markdown = session.to_markdown(tmp_path / "dialog.md").read_text()
    assert "INPUT GATE OVERRIDDEN" in markdown


# ---------------------------------------------------------------- models carry their gate


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    from radialog.model import RadialogModel

    model = RadialogModel.from_config("tiny")
    model.generate = lambda conversation, image_tokens=None, **kw: "The lungs are clear."
    return model


def test_a_model_saves_and_loads_its_gate(tiny, gate, tmp_path: Path) -> None:
    from radialog.model import RadialogModel

    tiny.gate = None
    bare = tiny.save_pretrained(tmp_path / "bare")
    assert not (bare / GATE_DIR).exists()
    assert RadialogModel.from_pretrained(bare).gate is None  # loads, gate off
    tiny.gate = gate
    try:
        out = tiny.save_pretrained(tmp_path / "gated")
    finally:
        tiny.gate = None
    loaded = RadialogModel.from_pretrained(out)
    assert loaded.gate is not None and loaded.gate.config == gate.config


def test_the_embedded_model_dir_has_a_gate() -> None:
    assert InputGate.for_model_dir(weights_root() / "radialog-mini") is not None


# ---------------------------------------------------------------- CLI


@pytest.fixture()
def cli(tiny, monkeypatch):
    """`radialog` with the tiny model in place of the loaded one (the gate is still read
    from radialog-mini's folder, as in real use)."""
    from radialog.cli import main
    from radialog.commands import chat, demo, report

    for module in (report, chat, demo):
        monkeypatch.setattr(module, "load_model", lambda args: tiny)
    return main


def test_cli_report_refuses_non_chest_images(cli, tmp_path: Path, capsys) -> None:
    for name, (path, words) in non_chest_images(tmp_path).items():
        code = cli(["report", str(path), "--json"])
        captured = capsys.readouterr()
        assert code == 2, name
        assert captured.out == ""
        assert "refused by the input gate" in captured.err and words in captured.err, name
        assert "--force" in captured.err
        assert "Traceback" not in captured.err


def test_cli_chat_and_demo_refuse_too(cli, tmp_path: Path, capsys, monkeypatch) -> None:
    import io

    noise = non_chest_images(tmp_path)["grey noise"][0]
    monkeypatch.setattr("sys.stdin", io.StringIO("/quit\n"))
    assert cli(["chat", str(noise)]) == 2
    assert "refused by the input gate" in capsys.readouterr().err
    assert cli(["demo", "--image", str(noise)]) == 2
    assert "refused by the input gate" in capsys.readouterr().err


def test_cli_force_runs_and_records_the_override(cli, tmp_path: Path, capsys) -> None:
    noise = non_chest_images(tmp_path)["RGB noise"][0]
    assert cli(["report", str(noise), "--json", "--force"]) == 0
    gate = json.loads(capsys.readouterr().out)["gate"]
    assert gate["decision"] == "refuse" and gate["forced"] is True
    assert gate["reason"] == "colour"
    assert cli(["report", str(noise), "--force"]) == 0
    assert "INPUT GATE OVERRIDDEN" in capsys.readouterr().out


@pytest.mark.parametrize("path", [EXAMPLE_IMAGE, *REAL_CHEST], ids=lambda p: p.name[:24])
def test_cli_report_on_real_chest_xrays_records_the_gate(cli, path: Path, capsys) -> None:
    assert cli(["report", str(path), "--json"]) == 0
    gate = json.loads(capsys.readouterr().out)["gate"]
    assert gate["decision"] == "accept" and not gate["forced"] and gate["score"] >= 0.5


def test_a_model_without_a_gate_says_so(cli, tiny, tmp_path: Path, capsys) -> None:
    tiny.gate = None
    bare = tiny.save_pretrained(tmp_path / "bare")
    noise = non_chest_images(tmp_path)["grey noise"][0]
    assert cli(["report", str(noise), "--json", "--model", str(bare)]) == 0
    assert json.loads(capsys.readouterr().out)["gate"]["decision"] == "off"


# ---------------------------------------------------------------- HTTP API


@pytest.fixture(scope="module")
def server(tiny, gate):
    from radialog.serve import ServeSettings, create_app
    from radialog.serve.background import serve_in_background

    tiny.gate = gate
    try:
        settings = ServeSettings(max_new_tokens=8, api_key=None)
        with serve_in_background(create_app(tiny, settings)) as url:
            yield url
    finally:
        tiny.gate = None


def _chat_body(data: bytes, **extra) -> dict:
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    content = [
        {"type": "text", "text": "Write a report for this X-ray."},
        {"type": "image_url", "image_url": {"url": uri}},
    ]
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 8, **extra}


def test_api_reports_refuses_with_422_and_its_code(server, tmp_path: Path) -> None:
    for name, (path, words) in non_chest_images(tmp_path).items():
        r = httpx.post(f"{server}/v1/reports", files={"file": path.read_bytes()}, timeout=60)
        assert r.status_code == 422, name
        err = r.json()["error"]
        assert err["code"] == "not_a_chest_xray" and err["param"] == "file"
        assert words in err["message"] and "force=true" in err["message"], name


def test_api_reports_force_and_real_images(server, tmp_path: Path) -> None:
    noise = non_chest_images(tmp_path)["RGB noise"][0].read_bytes()
    for how in ({"params": {"force": "true"}}, {"data": {"force": "true"}}):
        r = httpx.post(f"{server}/v1/reports", files={"file": noise}, timeout=60, **how)
        assert r.status_code == 200, r.text
        assert r.json()["gate"]["forced"] is True and r.json()["gate"]["reason"] == "colour"
    for path in [EXAMPLE_IMAGE, *REAL_CHEST]:
        r = httpx.post(f"{server}/v1/reports", files={"file": path.read_bytes()}, timeout=60)
        assert r.status_code == 200, (path.name, r.text)
        assert r.json()["gate"]["decision"] == "accept"


def test_api_chat_refuses_and_force_overrides(server, tmp_path: Path) -> None:
    form = non_chest_images(tmp_path)["scanned form"][0].read_bytes()
    for stream in (False, True):
        r = httpx.post(f"{server}/v1/chat/completions", json=_chat_body(form, stream=stream))
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "not_a_chest_xray" and "document" in err["message"]
        assert '"force": true' in err["message"]
    r = httpx.post(f"{server}/v1/chat/completions", json=_chat_body(form, force=True), timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["radialog"]["gate"]["forced"] is True
    r = httpx.post(
        f"{server}/v1/chat/completions", json=_chat_body(EXAMPLE_IMAGE.read_bytes()), timeout=60
    )
    assert r.status_code == 200 and r.json()["radialog"]["gate"]["decision"] == "accept"
