"""Telegram webhook mode end to end: the real App serves the webhook on its API port, the
test server POSTs updates there (through a "load balancer": round-robin targets), aiogram
handles them. A command and a press act; a delivery Telegram repeats acts once; forged,
oversize and garbage requests are refused before anything acts. Two Apps on one PostgreSQL
database behind the round-robin: every update acted on once. And polling mode waits for
leadership."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from bot.model import Action, CaseState
from handlers.cli import app as cli
from handlers.telegram.adapter import TelegramAdapter
from handlers.telegram.webhook import SECRET_LABEL
from store.models import KeyValueRow, TelegramUpdateRow
from tests.conftest import GIVEN_POSTGRES_URL, POSTGRES_SKIP, POSTGRES_UP
from tests.doubles.telegram_server.webhooks import SECRET_HEADER
from tests.doubles.telegram_world import PUBLIC_URL, WEBHOOK_PATH, World, telegram_world


def secret_of(world: World) -> str:
    adapter = world.app.adapter("telegram")
    assert isinstance(adapter, TelegramAdapter) and adapter.webhook is not None
    return adapter.webhook.secret


async def update_rows(world: World) -> list[tuple[int, str, str]]:
    """(update id, state, instance) of every claimed update."""
    row = TelegramUpdateRow
    async with world.app.database.uow() as uow:
        result = await uow.session.execute(
            select(row.update_id, row.state, row.instance).order_by(row.update_id)
        )
        return [(u, s, i) for u, s, i in result]


def answers_to_query(world: World, query_id: str) -> int:
    return sum(
        1
        for c in world.server.calls("answerCallbackQuery")
        if c.ok and c.params.get("callback_query_id") == query_id
    )


def bot_replies(world: World, chat: int, message_id: int) -> int:
    return sum(
        1
        for m in world.server.messages(chat)
        if m.bot_id is not None and m.reply_to_message_id == message_id
    )


async def raw_post(url: str, body: bytes, secret: bytes) -> tuple[int, bytes]:
    """A POST with header bytes no HTTP client would send (not UTF-8)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        b"POST " + parts.path.encode() + b" HTTP/1.1\r\nHost: bot\r\n"
        b"Content-Type: application/json\r\n"
        + SECRET_HEADER.encode()
        + b": "
        + secret
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer


def status_update(world: World, update_id: int) -> dict[str, Any]:
    """A /status command from the duty officer, as Telegram would POST it."""
    duty = world.person("duty")
    return {
        "update_id": update_id,
        "message": {
            "message_id": 900_000 + update_id,
            "from": duty.to_api(),
            "chat": {"id": world.coordination, "type": "supergroup", "title": "ЦУР"},
            "date": 1_800_000_000,
            "text": "/status",
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
        },
    }


async def post(
    url: str, body: bytes, secret: str | None, *, chunked: bool = False
) -> tuple[int, str]:
    """POST `body` as is; `chunked`: streamed without a Content-Length."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    data: Any = stream() if chunked else io.BytesIO(body)
    async with aiohttp.ClientSession() as http, http.post(url, data=data, headers=headers) as r:
        return r.status, await r.text()


async def test_webhook_is_set_and_a_command_and_a_press_act(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, webhook=True) as world:
        hook = world.server.webhook_of(world.bot)
        assert hook is not None
        assert hook.url == PUBLIC_URL + WEBHOOK_PATH
        assert hook.secret_token == secret_of(world) and len(hook.secret_token) >= 32
        assert hook.max_connections == 40
        info = next(c for c in world.server.calls("setWebhook") if c.ok).params
        assert set(json.loads(info["allowed_updates"])) >= {"message", "callback_query"}
        assert world.server.calls("getUpdates") == []  # no polling in webhook mode

        status = world.say("duty", world.coordination, "/status")
        assert "ЖКХ" in ((await world.answer_to(status)).text or "")

        case_id = await world.open_case()
        card = await world.card(case_id)
        answer = await world.press("spec", card, "Взять")
        assert answer["text"] == "Готово: Взять"
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.TAKEN
        assert "Анна Иванова" in ((await world.card(case_id)).text or "")
        rows = await update_rows(world)
        assert rows and {state for _, state, _ in rows} == {"done"}
        assert all(d.error is None for d in world.server.deliveries())


async def test_a_repeated_delivery_acts_once(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, webhook=True) as world:
        case_id = await world.open_case()
        card = await world.card(case_id)
        query = world.server.press_button(
            card.chat_id, card.message_id, world.person("spec"), button_text="Взять"
        )
        # The bot's 200 for this press is lost: Telegram delivers the press again.
        update_id = world.server.lose_webhook_answer(world.bot)
        await world.server.wait_for(lambda: len(world.server.deliveries(update_id)) == 2, 10)
        await world.idle()
        assert [d.error for d in world.server.deliveries(update_id)] == [
            "Read timeout expired",
            None,
        ]
        assert answers_to_query(world, query) == 1  # handled once
        async with world.app.database.uow() as uow:
            kinds = [e.kind for e in await uow.events.for_case(case_id)]
        assert kinds.count(Action.TAKE) == 1

        command = world.say("duty", world.coordination, "/status")
        world.server.lose_webhook_answer(world.bot)
        await world.answer_to(command)
        await world.idle()
        assert bot_replies(world, world.coordination, command.message_id) == 1


async def test_forged_oversize_and_garbage_requests_are_refused(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, webhook=True) as world:
        url, secret = world.webhook_urls[0], secret_of(world)
        forged = json.dumps(status_update(world, 777_001)).encode()
        for wrong in (None, "", "x" * len(secret), secret[:-1]):
            assert await post(url, forged, wrong) == (403, "wrong secret token")
        assert (await raw_post(url, forged, b"\xff\xfe" + secret.encode()))[0] == 403
        await world.idle()
        before = await update_rows(world)  # what the test server delivered itself
        assert 777_001 not in [u for u, _, _ in before]  # nothing claimed, nothing handled
        async with world.app.database.uow() as uow:
            assert await uow.outbox.depth() == 0

        huge = b'{"update_id": 1, "pad": "' + b"x" * (1024 * 1024) + b'"}'
        assert await post(url, huge, secret) == (413, "the body is too large")
        assert await post(url, huge, secret, chunked=True) == (413, "the body is too large")
        assert await post(url, b"not json", secret) == (400, "the body is not JSON")
        assert await post(url, b"[1, 2]", secret) == (400, "the body is not a JSON object")
        status, reason = await post(url, b'{"update_id": "seven"}', secret)
        assert status == 400 and reason.startswith("not a Telegram Update: update_id")
        status, reason = await post(url, b'{"message": {}}', secret)
        assert status == 400 and reason.startswith("not a Telegram Update")
        assert await update_rows(world) == before

        # The same update with the secret is handled, once, however often it comes.
        assert await post(url, forged, secret) == (200, "ok")
        assert await post(url, forged, secret) == (200, "ok")
        rows = await update_rows(world)
        assert [(u, state) for u, state, _ in rows if u == 777_001] == [(777_001, "done")]

        # A stopping instance takes nothing new: Telegram retries, elsewhere.
        adapter = world.app.adapter("telegram")
        assert isinstance(adapter, TelegramAdapter) and adapter.webhook is not None
        await adapter.webhook.close()
        later = json.dumps(status_update(world, 777_002)).encode()
        assert await post(url, later, secret) == (
            503,
            "this instance is stopping; Telegram will retry",
        )
        assert 777_002 not in [u for u, _, _ in await update_rows(world)]


async def department_of(world: World, case_id: int) -> str:
    return (await world.case(case_id)).department


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A PostgreSQL database of its own: two Apps share it as two instances would."""
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    name = f"webhook_{uuid.uuid4().hex[:10]}"
    given = make_url(GIVEN_POSTGRES_URL)
    admin = given.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield given.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.mark.postgres
async def test_two_instances_behind_round_robin_act_once_each(
    tmp_path: Path, postgres_url: str
) -> None:
    async with telegram_world(
        tmp_path, webhook=True, instances=2, database_url=postgres_url
    ) as world:
        first, second = world.apps
        assert secret_of(world) == next(
            a.webhook.secret
            for a in second.adapters
            if isinstance(a, TelegramAdapter) and a.webhook is not None
        )  # derived alike by both, stored by neither
        texts = (
            "Третий день нет отопления, батареи ледяные",
            "Автобус 12 не пришёл, люди мёрзнут на остановке",
            "Во дворе прорвало трубу, вода заливает подвал",
            "На остановке у школы сломан светофор",
        )
        cases = [await world.open_case(text) for text in texts]
        assert len(set(cases)) == 4
        queries = []
        for case_id in cases:
            department = await department_of(world, case_id)
            card = await world.card(case_id, department)
            who = {"housing": "spec", "transport": "tspec"}[department]
            queries.append(
                world.server.press_button(
                    card.chat_id, card.message_id, world.person(who), button_text="Взять"
                )
            )
            update_id = world.server.lose_webhook_answer(world.bot)  # each press comes twice
            # One after another, as people press (a press must be answered within Telegram's
            # callback timeout, 1.5 s at this world's scale), and each retry done before the
            # next press: the round-robin then sends every retry to the other instance.
            await world.server.wait_answer(queries[-1], timeout=15)
            await world.server.wait_for(
                lambda update_id=update_id: len(world.server.deliveries(update_id)) == 2,
                timeout=15,
            )
        commands = [world.say("duty", world.coordination, "/status") for _ in range(4)]
        for command in commands:
            await world.answer_to(command, within=15)
        await world.idle(within=20)

        assert [answers_to_query(world, q) for q in queries] == [1, 1, 1, 1]
        assert [bot_replies(world, world.coordination, c.message_id) for c in commands] == [1] * 4
        for case_id in cases:
            assert (await world.case(case_id)).state is CaseState.TAKEN, case_id
            async with first.database.uow() as uow:
                kinds = [e.kind for e in await uow.events.for_case(case_id)]
            assert kinds.count(Action.TAKE) == 1
        # Both instances took updates, and every retry landed on the other one.
        rows = await update_rows(world)
        assert {state for _, state, _ in rows} == {"done"}
        assert {instance for _, _, instance in rows} == {"otklik-0", "otklik-1"}
        retried = [d.update_id for d in world.server.deliveries() if d.error is not None]
        assert len(retried) == 4
        for update_id in retried:
            urls = [d.url for d in world.server.deliveries(update_id)]
            assert len(urls) == 2 and urls[0] != urls[1]


async def test_polling_waits_for_leadership(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, leading=False) as world:
        await asyncio.sleep(0.2)  # give a wrongly started poll every chance to show
        assert world.server.calls("getUpdates") == []
        early = world.say("duty", world.coordination, "/status")
        assert world.server.pending_updates(world.bot)

        world.app.leadership.set(True)
        await world.answer_to(early)  # the new leader polls and answers
        await world.server.wait_for(lambda: world.server.is_polling(world.bot))

        world.app.leadership.set(False)
        await world.server.wait_for(lambda: not world.server.is_polling(world.bot))
        polls = len(world.server.calls("getUpdates"))
        late = world.say("duty", world.coordination, "/status")
        await asyncio.sleep(0.2)
        assert len(world.server.calls("getUpdates")) == polls  # no poll while not leading
        assert bot_replies(world, world.coordination, late.message_id) == 0

        world.app.leadership.set(True)
        await world.answer_to(late)


async def test_an_update_whose_handling_failed_is_handled_again(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, webhook=True) as world:
        case_id = await world.open_case()
        card = await world.card(case_id)
        # Telegram fails the bot's answer to the press: the update is released and answered
        # 503, Telegram delivers it again, and this time the press is answered.
        world.server.fail_next_call("answerCallbackQuery")
        update_id = world.server.next_update_id(world.bot)
        query = world.server.press_button(
            card.chat_id, card.message_id, world.person("spec"), button_text="Взять"
        )
        await world.server.wait_answer(query, timeout=10)
        await world.idle()
        assert [d.status for d in world.server.deliveries(update_id)] == [503, 200]
        assert answers_to_query(world, query) == 1
        assert (await world.case(case_id)).state is CaseState.TAKEN
        async with world.app.database.uow() as uow:
            kinds = [e.kind for e in await uow.events.for_case(case_id)]
        assert kinds.count(Action.TAKE) == 1  # the second handling found it taken
        assert (update_id, "done") in [(u, s) for u, s, _ in await update_rows(world)]


async def test_a_dead_instances_claim_is_taken_over_and_a_live_one_waited_for(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path, webhook=True) as world:
        database, bot, server = world.app.database, world.bot, world.server
        reclaim = world.app.config.telegram.webhook.reclaim_after_s  # type: ignore[union-attr]
        case_id = await world.open_case()
        card = await world.card(case_id)

        # An instance claimed the press and died before handling it: the claim is stale.
        dead = server.next_update_id(bot)
        long_ago = world.app.clock.now() - timedelta(seconds=reclaim + 1)
        async with database.uow() as uow:
            await uow.telegram_updates.claim(bot.id, dead, "dead", long_ago, long_ago)
            await uow.commit()
        query = server.press_button(
            card.chat_id, card.message_id, world.person("spec"), button_text="Взять"
        )
        await server.wait_answer(query, timeout=10)
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.TAKEN
        assert (dead, "done", world.app.config.instance_name) in await update_rows(world)

        # Another instance is handling this update right now: the delivery here waits for
        # it, finds it done, and answers 200 without acting.
        busy = server.next_update_id(bot)
        now = world.app.clock.now()
        async with database.uow() as uow:
            await uow.telegram_updates.claim(bot.id, busy, "other", now, now)
            await uow.commit()
        card = await world.card(case_id)
        other = server.press_button(card.chat_id, card.message_id, world.person("spec2"), "x")
        await server.wait_for(lambda: busy in server.in_flight(bot))
        async with database.uow() as uow:
            await uow.telegram_updates.done(bot.id, [busy], world.app.clock.now())
            await uow.commit()
        await server.wait_for(lambda: [d.status for d in server.deliveries(busy)][-1:] == [200], 30)
        await world.idle()
        # 200 once it finds it done; on a loaded machine the wait may pass its 5 s first, and
        # then the answer is 503 and Telegram's retry gets the 200.
        statuses = [d.status for d in server.deliveries(busy)]
        assert statuses[-1] == 200 and set(statuses[:-1]) <= {503}, statuses
        assert answers_to_query(world, other) == 0  # "other" acted, not this instance


async def test_otklik_telegram_webhook_shows_and_deletes_it(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, webhook=True) as world:
        await world.idle()  # what start-up caused is delivered
        world.server.set_webhook_targets(world.bot, ["http://127.0.0.1:9/nobody"])
        world.say("duty", world.coordination, "/status")  # waits: nobody listens there now
        await world.server.wait_for(lambda: bool(world.server.deliveries()), timeout=10)
        runner, config = CliRunner(), str(tmp_path / "config.yaml")

        shown = await asyncio.to_thread(runner.invoke, cli, ["telegram-webhook", "-c", config])
        assert shown.exit_code == 0, shown.output
        out = " ".join(shown.output.split())
        assert f"url: {PUBLIC_URL}{WEBHOOK_PATH}" in out
        assert "pending updates: 1" in out and "max connections: 40" in out
        assert "last error:" in out and "Connection refused" in out
        assert secret_of(world) not in out

        deleted = await asyncio.to_thread(
            runner.invoke, cli, ["telegram-webhook", "--delete", "-c", config]
        )
        assert deleted.exit_code == 0, deleted.output
        assert "Webhook deleted." in deleted.output and "(none: the bot polls)" in deleted.output
        assert world.server.webhook_of(world.bot) is None
        assert len(world.server.pending_updates(world.bot)) == 1  # kept for the poller


def calls_answering(world: World, query_id: str) -> int:
    """answerCallbackQuery calls for the press, accepted or not: how often a handler ran."""
    return sum(
        1
        for c in world.server.calls("answerCallbackQuery")
        if c.params.get("callback_query_id") == query_id
    )


async def test_a_handling_longer_than_telegram_waits_acts_once(tmp_path: Path) -> None:
    """Handling a press outlasts Telegram's wait for the answer and the reclaim time three
    times over: Telegram delivers it again and again meanwhile, and the claim, renewed while
    in hand, keeps every redelivery from acting; the one after the end gets 200."""
    reclaim_s = 1.0
    async with telegram_world(tmp_path, webhook=True, reclaim_after_s=reclaim_s) as world:
        server = world.server
        case_id = await world.open_case()
        card = await world.card(case_id)
        server.webhook_timeout_s = 0.5  # Telegram's wait for the answer, at this scale
        server.slow_next_answer("answerCallbackQuery", 3 * reclaim_s)
        update_id = server.next_update_id(world.bot)
        query = server.press_button(
            card.chat_id, card.message_id, world.person("spec"), button_text="Взять"
        )
        await server.wait_for(
            lambda: [d.status for d in server.deliveries(update_id)][-1:] == [200], 30
        )
        await world.idle()
        deliveries = server.deliveries(update_id)
        assert len(deliveries) >= 3 and deliveries[0].error == "Read timeout expired"
        assert calls_answering(world, query) == 1
        async with world.app.database.uow() as uow:
            kinds = [e.kind for e in await uow.events.for_case(case_id)]
        assert kinds.count(Action.TAKE) == 1
        assert (update_id, "done") in [(u, s) for u, s, _ in await update_rows(world)]


async def test_the_secret_set_is_the_derived_one_and_not_stored(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, webhook=True) as world:
        database = world.app.database
        secret = secret_of(world)
        assert secret == database.keyring.derived_secret(f"{SECRET_LABEL}{world.bot.id}")
        assert world.server.webhook_of(world.bot).secret_token == secret  # type: ignore[union-attr]
        async with database.uow() as uow:
            stored = (await uow.session.execute(select(KeyValueRow.value))).scalars().all()
        assert secret not in stored
