"""The sandbox in a real browser: Debian's chromium driven by playwright, against a started
Otklik with the shipped example config and no chat credentials. A fed mention becomes a card
on its department's page; the specialist takes it, answers with a pre-approved template and
marks it published; a stranger's press is refused with the words Telegram uses. Screenshots of
the card page are kept in tests/artifacts/ (ignored by git)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.model import CaseState
from tests.doubles.sandbox import HEATING, running_example
from tests.doubles.support import ROOT

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install -e '.[dev]')"
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
# What Telegram answers a stranger's press with (tests/e2e/test_telegram.py asserts the same).
TELEGRAM_REFUSAL = "Нет прав на это действие."
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="no chromium binary (Debian: apt-get install chromium; .ci/run installs it as root)",
)


async def test_feed_take_answer_publish_and_a_strangers_press_in_a_browser(
    tmp_path: Path,
) -> None:
    async with (
        running_example(tmp_path) as (app, base),
        playwright_api.async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{base}/sandbox#housing")
            await page.wait_for_selector("#live.on")  # the event stream is connected

            # Feed a pasted mention as the monitoring service would send it.
            await page.fill("#feed-text", HEATING)
            await page.fill("#feed-author", "Пётр Сидоров")
            await page.click("#feed-send")
            result = page.locator("#feed-result")
            await playwright_api.expect(result).to_contain_text("Открыт кейс #")
            case_id = int((await result.inner_text()).split("#", 1)[1].split(" ", 1)[0])
            card = page.locator(f'.msg[data-kind="card"][data-case="{case_id}"]')
            await playwright_api.expect(card).to_contain_text(f"Кейс №{case_id}")
            await playwright_api.expect(card).to_contain_text("нет отопления")
            assert await page.locator("#chat-name").inner_text() == "ЖКХ"

            # A stranger presses "Take": refused, with Telegram's alert text.
            await page.select_option("#actor", "stranger")
            await card.get_by_role("button", name="Взять", exact=True).click()
            toast = page.locator("#toast")
            await playwright_api.expect(toast).to_have_text(TELEGRAM_REFUSAL)
            await playwright_api.expect(toast).to_have_class("alert")
            assert (await app.cases.get(case_id)).state is CaseState.NEW  # type: ignore[union-attr]

            # The housing specialist: take, the first-reply menu, a pre-approved template.
            await page.select_option("#actor", "ivanova")
            await card.get_by_role("button", name="Взять", exact=True).click()
            await playwright_api.expect(card).to_contain_text("Анна Иванова")
            await card.get_by_role("button", name="Первый ответ ▸").click()
            await card.get_by_role("button", name="« Назад").wait_for()
            await card.get_by_role("button", name="Первый ответ (ЖКХ)").click()
            published = card.get_by_role("button", name="Опубликовано", exact=True)
            await published.wait_for()
            await playwright_api.expect(card).to_contain_text("Здравствуйте!")  # ready to copy
            case = await app.cases.get(case_id)
            assert case is not None and case.state is CaseState.APPROVED
            assert case.first_touched_at is None  # approved, but the citizen has seen nothing

            ARTIFACTS.mkdir(exist_ok=True)
            approved = ARTIFACTS / "sandbox-card-approved.png"
            await page.screenshot(path=str(approved))

            await published.click()
            await playwright_api.expect(card).to_contain_text("Опубликован")
            case = await app.cases.get(case_id)
            assert case is not None and case.state is CaseState.PUBLISHED
            assert case.first_touched_at is not None  # published: the first reply is met
            final = ARTIFACTS / "sandbox-card-published.png"
            await page.screenshot(path=str(final))
            assert approved.stat().st_size > 10_000 and final.stat().st_size > 10_000

            # The duty officer asks for the status in the coordination chat.
            await page.locator('.chat-item[data-chat="coordination"]').click()
            await page.select_option("#actor", "morozova")
            await page.fill("#say-text", "/status")
            await page.press("#say-text", "Enter")
            mine = page.locator('.msg.mine[data-kind="person"]', has_text="/status")
            await mine.wait_for()
            answer = page.locator('.msg[data-kind="page"]').last
            await playwright_api.expect(answer.locator(".quote")).to_have_text("/status")
            print(f"\nscreenshots: {approved} {final}")  # noqa: T201
        finally:
            await browser.close()
