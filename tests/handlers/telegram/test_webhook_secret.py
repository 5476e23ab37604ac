"""The webhook's secret (handlers/telegram/webhook.py): derived from the index key and the
bot's id, so every instance with the keys computes the same one and none is stored; a
configured `secret_token` wins; the one an older release stored is still accepted beside it.
On SQLite and PostgreSQL."""

from __future__ import annotations

import re

from aiogram import Bot, Dispatcher

from bot.clock import FrozenClock
from bot.settings.connections import TelegramWebhookConfig
from handlers.telegram.once import OnceHandler
from handlers.telegram.webhook import (
    LEGACY_SECRET_KEY,
    TelegramWebhook,
    WebhookSecrets,
    webhook_secrets,
)
from store import crypto
from store.db import Database

BOT = 123456
TOKEN = f"{BOT}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
HOOK = TelegramWebhookConfig(url="https://bot.example.org")
TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what setWebhook takes


async def test_derived_alike_by_every_instance_and_stored_nowhere(database: Database) -> None:
    secrets = await webhook_secrets(HOOK, database, BOT)
    assert TELEGRAM_SECRET.fullmatch(secrets.current) and len(secrets.current) == 43
    assert secrets == WebhookSecrets(secrets.current, legacy=None)
    assert secrets == await webhook_secrets(HOOK, database, BOT)
    assert secrets.current != (await webhook_secrets(HOOK, database, BOT + 1)).current
    async with database.uow() as uow:
        assert await uow.kv.get(LEGACY_SECRET_KEY) is None

    # An older release generated one and stored it: still accepted, the derived one is set.
    async with database.uow() as uow:
        await uow.kv.set(LEGACY_SECRET_KEY, "kept-by-an-old-release")
        await uow.commit()
    upgraded = await webhook_secrets(HOOK, database, BOT)
    assert upgraded == WebhookSecrets(secrets.current, legacy="kept-by-an-old-release")

    configured = HOOK.model_copy(update={"secret_token": "set-by-the-operator_1"})
    assert await webhook_secrets(configured, database, BOT) == WebhookSecrets(
        "set-by-the-operator_1"
    )


def test_the_derived_secret_follows_the_index_key_not_the_data_keys() -> None:
    """Instances share the index key and never rotate it; during a data key rotation they
    hold different current keys one restart after another, and must still agree."""
    index = crypto.new_key_text()
    before = crypto.parse_keys(f"old:{crypto.new_key_text()}", index, origin="test")
    rotated = crypto.parse_keys(
        f"new:{crypto.new_key_text()},old:{crypto.new_key_text()}", index, origin="test"
    )
    other = crypto.parse_keys(f"old:{crypto.new_key_text()}", crypto.new_key_text(), "test")
    label = f"telegram webhook, bot {BOT}"
    assert before.derived_secret(label) == rotated.derived_secret(label)
    assert before.derived_secret(label) != other.derived_secret(label)
    assert before.derived_secret(label) != before.derived_secret(label + "0")


async def test_the_endpoint_accepts_the_derived_and_an_older_releases_secret(
    database: Database, clock: FrozenClock
) -> None:
    bot = Bot(TOKEN)
    once = OnceHandler(bot, Dispatcher(), database, clock, "otklik-1", reclaim_after_s=60.0)
    try:
        upgraded = TelegramWebhook(HOOK, bot, once, WebhookSecrets("derived", "stored-one"))
        assert upgraded.accepts(b"derived") and upgraded.accepts(b"stored-one")
        assert not upgraded.accepts(b"") and not upgraded.accepts(b"derive")
        fresh = TelegramWebhook(HOOK, bot, once, WebhookSecrets("derived"))
        assert fresh.accepts(b"derived") and not fresh.accepts(b"stored-one")
    finally:
        await bot.session.close()
