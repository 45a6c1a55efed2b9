"""The input gate on the web page, in real headless Chromium: a file that is not a chest
X-ray is refused with the gate's reason and an override button; the override produces a
report marked as overridden, and the dialog goes on (its requests carry `force`); a real
chest X-ray gets its report with no gate notice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_paths import EXAMPLE_IMAGE
from radialog.gate import GATE_DIR, InputGate
from radialog.model.radialog_model import weights_root
from radialog.serve import ServeSettings, create_app
from radialog.serve.background import serve_in_background

pytestmark = pytest.mark.browser

REPORT = "The heart is normal in size. The lungs are clear."


def _ask_without_error(page, question: str) -> None:  # noqa: ANN001
    """Send a follow-up and wait for its answer; no error message may appear."""
    page.fill("#question", question)
    page.click("#send")
    page.wait_for_function(
        "document.querySelectorAll('#messages .msg.assistant').length >= 1 && "
        "!document.querySelector('#send').disabled",
        timeout=60_000,
    )
    assert page.locator("#messages .msg.error").count() == 0


@pytest.fixture(scope="module")
def server():
    torch.set_num_threads(1)
    from radialog.model import RadialogModel

    model = RadialogModel.from_config("tiny")
    model.gate = InputGate.from_pretrained(weights_root() / "radialog-mini" / GATE_DIR)
    model.predicted_labels = lambda probs: []
    model.generate = lambda conversation, image_tokens=None, **kw: REPORT
    settings = ServeSettings(max_new_tokens=12, api_key=None, repair=False)
    with serve_in_background(create_app(model, settings)) as url:
        yield url


def test_a_photo_is_refused_then_overridden(browser, server, tmp_path: Path) -> None:
    photo = tmp_path / "holiday.png"
    rgb = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(rgb, mode="RGB").save(photo)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")

    page.set_input_files("#file", str(photo))
    page.click("#generate")
    page.wait_for_selector("#gate-refused:not(.hidden)", timeout=60_000)
    text = page.inner_text("#gate-refused")
    assert "Not a chest X-ray" in text and "colour photograph" in text
    assert page.is_hidden("#result")  # no report for it

    page.click("#force")
    page.wait_for_selector("#result:not(.hidden)", timeout=60_000)
    assert page.is_hidden("#gate-refused")
    assert page.inner_text("#report") == REPORT
    note = page.inner_text("#gate")
    assert "Input gate overridden" in note and "colour photograph" in note

    # the dialog goes on for the overridden image (each request says force)
    _ask_without_error(page, "Is there an effusion?")

    # a real chest X-ray afterwards: a report, and no gate notice
    page.set_input_files("#file", str(EXAMPLE_IMAGE))
    page.click("#generate")
    page.wait_for_function(
        "document.querySelector('#status').textContent.startsWith('Report ready')",
        timeout=60_000,
    )
    assert page.is_hidden("#gate") and page.is_hidden("#gate-refused")
    # its follow-ups send the page's preview of the image: the gate accepts that too
    _ask_without_error(page, "Is the heart enlarged?")
    assert errors == []
    page.close()


def test_a_blank_image_is_refused_with_its_reason(browser, server, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((256, 256), 128, np.uint8)).save(blank)
    page = browser.new_page()
    page.goto(server + "/")
    page.set_input_files("#file", str(blank))
    page.click("#generate")
    page.wait_for_selector("#gate-refused:not(.hidden)", timeout=60_000)
    assert "blank" in page.inner_text("#gate-refused")
    page.close()
