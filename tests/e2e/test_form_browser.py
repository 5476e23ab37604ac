"""The web form in a real browser: Debian's chromium driven by playwright, against a started
Otklik (the example config, its form on). A person fills it on a phone-sized screen, first
with a mistake the page announces, then right: a case opens and the page shows the reference
number. A robot that fills the hidden field is refused, and so is the next appeal from the
same address once the hour's limit is used."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.cases.replies import FORM_SOURCE
from bot.model import CaseState
from tests.doubles.form import running_form
from tests.doubles.support import ROOT

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install -e '.[dev]')"
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
TIMEOUT_MS = 20_000
HEATING = "Третий день нет отопления в доме на Ленина, 5, батареи ледяные"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="no chromium binary (Debian: apt-get install chromium; .ci/run installs it as root)",
)


async def test_a_person_sends_the_form_and_a_robot_is_refused(tmp_path: Path) -> None:
    async with (
        running_form(tmp_path, per_hour=2) as (app, base),
        playwright_api.async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            phone = await browser.new_context(
                viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True
            )
            page = await phone.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{base}/form")
            assert await page.get_attribute("html", "lang") == "ru"
            # Every field is found by its label, as a screen reader announces it.
            await page.get_by_label("Ваше имя").fill("Пётр Сидоров")
            await page.get_by_label("E-mail или телефон").fill("petr@")
            await page.get_by_label("Текст сообщения").fill(HEATING)
            await page.get_by_role("button", name="Отправить").click()

            # The mistake is announced at the top and next to its field; the words stay.
            summary = page.get_by_role("alert")
            await playwright_api.expect(summary).to_contain_text("Проверьте форму")
            contact = page.get_by_label("E-mail или телефон")
            await playwright_api.expect(contact).to_have_attribute("aria-invalid", "true")
            await playwright_api.expect(page.get_by_label("Текст сообщения")).to_have_value(HEATING)
            await contact.fill("Petr@Example.ru")
            await page.get_by_label("Куда, по-вашему, это относится").select_option(label="ЖКХ")
            await page.get_by_role("button", name="Отправить").click()

            reference = page.locator("#reference")
            await playwright_api.expect(reference).to_contain_text("Номер сообщения: F-")
            number = await reference.locator(".number").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "form-accepted.png"), full_page=True)
            async with app.database.uow() as uow:
                mention = await uow.mentions.get_by_external(FORM_SOURCE, number)
            assert mention is not None and mention.case_id is not None
            assert mention.author.external_id == "petr@example.ru"
            case = await app.cases.get(mention.case_id)
            assert case is not None and case.state is CaseState.NEW
            assert case.department == "housing"

            # A robot fills every field it finds, the hidden one too: refused.
            robot = await browser.new_page()
            robot.set_default_timeout(TIMEOUT_MS)
            await robot.goto(f"{base}/form?lang=en")
            await robot.fill("#name", "Robot")
            await robot.fill("#contact", "robot@example.com")
            await robot.fill("#text", "Cheap pills")
            await robot.fill("#website", "https://spam.example")
            async with robot.expect_navigation() as sent:
                await robot.click("#send")
            answer = await sent.value
            assert answer is not None and answer.status == 400
            await playwright_api.expect(robot.get_by_role("alert")).to_contain_text("robots fill")

            # Its address has used the hour's two tries: even a clean form is refused now.
            await robot.goto(f"{base}/form?lang=en")
            await robot.fill("#name", "Robot")
            await robot.fill("#contact", "robot@example.com")
            await robot.fill("#text", "Cheap pills")
            async with robot.expect_navigation() as sent:
                await robot.click("#send")
            answer = await sent.value
            assert answer is not None and answer.status == 429
            await playwright_api.expect(robot.get_by_role("alert")).to_contain_text(
                "Too many appeals"
            )
            async with app.database.uow() as uow:
                assert await uow.mentions.get_by_external(FORM_SOURCE, "Cheap pills") is None
            assert await app.cases.get(mention.case_id + 1) is None
        finally:
            await browser.close()
