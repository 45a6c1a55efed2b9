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


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's) through Playwright, for the browser tests."""
    import shutil
    from pathlib import Path

    from test_web_page import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (make browser-deps)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
