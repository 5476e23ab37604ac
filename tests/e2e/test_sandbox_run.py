"""`otklik run` as a newcomer starts it: the shipped config.example.yaml, no chat credentials,
no keys. It prints where the sandbox is, and in a real browser (Debian's chromium, driven by
playwright) a pasted complaint becomes a card on its department's page."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.doubles.support import ROOT, newcomers_config
from tests.doubles.synapse import free_port

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install -e '.[dev]')"
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PATIENCE_S = 60.0

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="no chromium binary (Debian: apt-get install chromium; .ci/run installs it as root)",
)


async def test_a_fresh_run_prints_the_sandbox_and_a_fed_mention_becomes_a_card(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = newcomers_config(tmp_path, port)
    log = tmp_path / "run.log"
    # No chat credentials and no keys, as on a fresh machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTKLIK_")}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "handlers.cli", "run", "-c", str(config),
            cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
    address = f"http://127.0.0.1:{port}/sandbox"
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE_S
        while address not in log.read_text(errors="replace"):
            assert process.returncode is None, log.read_text(errors="replace")[-3000:]
            assert loop.time() < deadline, log.read_text(errors="replace")[-3000:]
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http, http.get(address) as page:
            assert page.status == 200

        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = await browser.new_page()
                await page.goto(f"{address}#housing")
                await page.wait_for_selector("#live.on")
                await page.fill("#feed-text", "Третий день нет отопления в доме на Ленина, 5")
                await page.click("#feed-send")
                result = page.locator("#feed-result")
                await playwright_api.expect(result).to_contain_text("Открыт кейс #")
                case_id = int((await result.inner_text()).split("#", 1)[1].split(" ", 1)[0])
                card = page.locator(f'.msg[data-kind="card"][data-case="{case_id}"]')
                await playwright_api.expect(card).to_contain_text(f"Кейс №{case_id}")
                assert await page.locator("#chat-name").inner_text() == "ЖКХ"
            finally:
                await browser.close()
        # The keys a newcomer gets: generated beside the database, readable by the bot alone.
        keys = tmp_path / "otklik.db.keys"
        assert keys.is_file() and keys.stat().st_mode & 0o077 == 0
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), PATIENCE_S)
            except TimeoutError:
                process.kill()
                await process.wait()
