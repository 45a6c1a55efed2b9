"""The web page in real headless Chromium (Debian's /usr/bin/chromium via Playwright):
upload an X-ray, get the report, findings with their thresholds and the consistency check
(with the automatically repaired draft), ask a question, correct (a failed correction keeps
the report), see a bad file rejected clearly; no console errors. A screenshot is saved to
the test's tmp dir. The tiny model's LLM answers from a script: what the page does with the
answers is under test."""

from __future__ import annotations

import os

import pytest
import torch

from data_paths import EXAMPLE_IMAGE, SHARED_IMAGES
from radialog.serve import ServeSettings, create_app
from radialog.serve.background import serve_in_background

SHARED_IMAGE = SHARED_IMAGES / "00000001_000.png"
CHROMIUM = os.environ.get("RADIALOG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


DRAFT = "The heart is normal in size. The lungs are clear."
REPAIRED = "The heart is enlarged. The lungs are clear."
ANSWERS = [DRAFT, REPAIRED, "There is no pleural effusion.", "Your heart is a bit big.", "yes"]


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    from radialog.model import RadialogModel

    m = RadialogModel.from_config("tiny")
    m.predicted_labels = lambda probs: ["Cardiomegaly"]  # a fixed findings list
    replies = iter(ANSWERS)
    m.generate = lambda conversation, image_tokens=None, **kw: next(replies)
    return m


@pytest.fixture(scope="module")
def server(model):
    with serve_in_background(
        create_app(model, ServeSettings(max_new_tokens=12, api_key=None))
    ) as url:
        yield url


def test_upload_report_question_and_correction(browser, server, tmp_path) -> None:
    image = EXAMPLE_IMAGE if EXAMPLE_IMAGE.exists() else SHARED_IMAGE
    if not image.exists():
        pytest.skip("no example image")
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    external: list[str] = []
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith(server) or r.url.startswith(("data:", "blob:"))
            else external.append(r.url)
        ),
    )
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.goto(server + "/")
    assert "reviewed by a radiologist" in page.inner_text("#disclaimer")

    page.set_input_files("#file", str(image))
    page.click("#generate")
    page.wait_for_selector("#result:not(.hidden)", timeout=60_000)
    assert page.locator("#findings li").count() == 14
    assert page.locator("#findings li.on").count() >= 1  # predicted findings are highlighted
    assert page.eval_on_selector("#preview", "img => img.complete && img.naturalWidth > 0")
    report = page.inner_text("#report")
    assert report == REPAIRED
    assert "Report ready" in page.inner_text("#status")
    # each finding shows its threshold (a tick on the bar and in the tooltip)
    assert page.locator("#findings .bar .thr").count() == 14
    title = page.get_attribute("#findings li.on", "title")
    assert "above its threshold 0." in title
    # the consistency block: what the report states, with evidence, and the repaired draft
    block = page.inner_text("#consistency")
    assert "Consistent with the findings list" in block
    assert "Stated:" in block and "Cardiomegaly" in block and "The heart is enlarged." in block
    assert "repaired automatically" in block
    assert not page.is_visible("#consistency .draft")  # the first draft on demand
    page.click("#consistency summary")
    assert page.inner_text("#consistency .draft") == DRAFT

    page.fill("#question", "Is there a pleural effusion?")
    page.click("#send")
    page.wait_for_function(
        "document.querySelectorAll('#messages .msg.assistant').length >= 1 && !document.querySelector('#send').disabled",
        timeout=60_000,
    )
    assert page.locator("#messages .msg.user").first.inner_text() == "Is there a pleural effusion?"
    assert page.locator("#messages .msg.error").count() == 0

    page.click("[data-cmd='/easy']")
    page.wait_for_function(
        "document.querySelectorAll('#messages .msg.assistant').length >= 2 && !document.querySelector('#send').disabled",
        timeout=60_000,
    )

    page.click("#open-correct")
    box = page.locator("#correct-list input[value='Pleural Effusion']")
    box.set_checked(not box.is_checked())
    page.click("#send-correct")
    page.wait_for_selector("#messages .check", timeout=60_000)
    assert "Correction check" in page.inner_text("#messages .check")
    # the model answered "yes": a reply in the dialog, never the report
    assert "the report is unchanged" in page.inner_text("#messages .check")
    assert page.locator("#messages .msg.assistant").last.inner_text().startswith("yes")
    assert page.inner_text("#report") == REPAIRED
    assert console_errors == []  # no 404s (favicon), no script errors

    shot = tmp_path / "radialog-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert external == []  # no CDN, no fonts, nothing outside the server

    # a message over the model's context: a clear error naming the limit, nothing generated
    page.fill("#question", "effusion " * 5000)
    page.click("#send")
    page.wait_for_selector("#messages .msg.error", timeout=30_000)
    assert "the model reads at most 512 tokens" in page.inner_text("#messages .msg.error")
    assert page.inner_text("#report") == REPAIRED

    # a file that is not an X-ray: a clear message, no crash
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    page.set_input_files("#file", str(bad))
    page.click("#generate")
    page.wait_for_selector("#status.error", timeout=30_000)
    assert "PNG, JPEG or DICOM" in page.inner_text("#status")
    page.close()
