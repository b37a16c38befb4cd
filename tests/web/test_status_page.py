"""The status page in a real browser: Debian's headless Chromium driven by Playwright, against
a night imaging on the simulators. It renders the night, the preview loads, the graphs gain
points as frames arrive, the confirmed abort ends the night safely; with a token it asks."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.control.cpkit import TOKEN
from tests.web.webkit import serve_stacking_night

CHROMIUM = "/usr/bin/chromium"  # scripts/install-backends.sh installs it
#: where the screenshot is kept after the test (an artifact; build/ is not tracked)
ARTIFACTS = Path(os.environ.get("NIGHTRUNNER_ARTIFACTS", "build/test-artifacts"))
PHONE = {"width": 412, "height": 1400}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed "
                                       "(bash scripts/install-backends.sh)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            await b.close()


async def points(page: Page, graph: str) -> int:
    return int(await page.get_attribute(f"#{graph}", "data-points") or 0)


async def test_the_page_follows_a_night_and_aborts_it(tmp_path: Path, browser: Browser) -> None:
    async with serve_stacking_night(tmp_path, count=300, speed=60) as night:
        page = await browser.new_page(viewport=PHONE)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(night.url + "/")
        # the night's status
        await page.wait_for_function(
            "document.querySelector('#phase').textContent.startsWith('imaging')",
            timeout=30_000)
        assert await page.text_content("#plan") == "web test night"
        assert await page.text_content("#target") == "NGC 188"
        assert (await page.text_content("#frames") or "").endswith("/ 300")
        # the latest frame and the live stack load as pictures
        for img in ("live", "stacked"):
            await page.wait_for_function(
                f"document.querySelector('#{img}').naturalWidth > 0", timeout=30_000)
        await page.wait_for_function("Number(document.querySelector('#hist').dataset.updates"
                                     " || 0) > 0", timeout=30_000)
        # graphs gain points as frames arrive
        before = await points(page, "g-alt")
        await page.wait_for_function(
            f"Number(document.querySelector('#g-alt').dataset.points) > {before + 1}",
            timeout=30_000)
        assert await points(page, "g-temp") > 0
        assert await page.locator("#log li.frame").count() > 0
        shot = await page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"
        # abort asks first; cancelling it leaves the night running
        await page.click("button[data-act=abort]")
        assert "Abort the night?" in (await page.text_content("#confirm-text") or "")
        await page.click("#confirm button[value=cancel]")
        assert night.task is not None and not night.task.done()
        await page.click("button[data-act=abort]")
        await page.click("#confirm-ok")
        result = await night.task
        assert result.outcome == "aborted" and result.rig_safe
        events = [e["event"] for e in night.events_file()]
        assert "abort" in events and events.index("abort") < len(events) - 1
        assert any(e["event"] == "phase" and e["phase"] == "shutdown"
                   for e in night.events_file())
        assert errors == []


async def test_the_page_asks_for_the_token(tmp_path: Path, browser: Browser) -> None:
    async with serve_stacking_night(tmp_path, count=300, speed=60, token=TOKEN) as night:
        page = await browser.new_page(viewport=PHONE)
        await page.goto(night.url + "/")  # the page itself needs no token
        await page.wait_for_selector("#login:not([hidden])", timeout=15_000)
        assert await page.text_content("#conn") == "token needed"
        await page.fill("#token", TOKEN)
        await page.click("#login button[type=submit]")
        await page.wait_for_function(
            "document.querySelector('#phase').textContent.startsWith('imaging')",
            timeout=30_000)
        await page.wait_for_function("document.querySelector('#live').naturalWidth > 0",
                                     timeout=30_000)
        assert await page.is_hidden("#login")
