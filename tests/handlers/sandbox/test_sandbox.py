"""The sandbox over HTTP, from a started App with the shipped example config and no chat
credentials: feeds become cards on the right page, presses and replies go through the same
inbound path as Telegram's, and only who may come in comes in."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.clock import FrozenClock
from bot.model import CaseState, DraftStatus
from bot.settings.config import ConfigError
from handlers.sandbox.render import parse_html
from tests.doubles.sandbox import (
    HEADERS,
    HEATING,
    SandboxClient,
    example_config,
    labels,
    running_example,
    text_of,
)
from tests.doubles.synapse import free_port

# What Telegram answers a stranger's press with (tests/e2e/test_telegram.py asserts the same).
TELEGRAM_REFUSAL = "Нет прав на это действие."
TOKEN = "s" * 40


async def test_a_fed_mention_is_a_card_on_its_department_page_and_two_taps_publish_it(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        assert app.sandbox is not None and "sandbox" in app.transports
        sandbox = SandboxClient(http, base)
        fed = await sandbox.feed(HEATING)
        case_id = fed["case"]
        assert fed["department"] == "housing" and fed["sentiment"] == "negative"
        card = await sandbox.card("housing", case_id)
        assert f"Кейс №{case_id}" in text_of(card) and "нет отопления" in text_of(card)
        assert await sandbox.messages("transport") == []  # only the department's own page

        # A stranger is refused with Telegram's words, and nothing changes.
        refused = await sandbox.press("housing", "stranger", card, "Взять")
        assert refused == {"toast": TELEGRAM_REFUSAL, "alert": True}
        assert app.texts.t("ui.no_rights") == TELEGRAM_REFUSAL
        assert (await app.cases.get(case_id)).state is CaseState.NEW  # type: ignore[union-attr]

        taken = await sandbox.press("housing", "ivanova", card, "Взять")
        assert taken == {"toast": "Готово: Взять", "alert": False}
        card = await sandbox.card("housing", case_id, "Анна Иванова")
        await sandbox.press("housing", "ivanova", card, "Первый ответ ▸")
        card = await sandbox.wait_for(
            "housing", lambda m: m["id"] == card["id"] and "« Назад" in labels(m), "the menu"
        )
        template = next(label for label in labels(card) if label.startswith("Первый ответ ("))
        await sandbox.press("housing", "ivanova", card, template)
        card = await sandbox.wait_for(
            "housing", lambda m: m["id"] == card["id"] and "Опубликовано" in labels(m), "approval"
        )
        assert (await app.cases.get(case_id)).state is CaseState.APPROVED  # type: ignore[union-attr]
        await sandbox.press("housing", "ivanova", card, "Опубликовано")
        await sandbox.wait_for(
            "housing", lambda m: m["id"] == card["id"] and "Опубликован" in text_of(m)
        )
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.PUBLISHED
        assert case.first_touched_at is not None


async def test_a_draft_written_in_reply_to_the_prompt_is_approved_by_the_approver(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        case_id = (await sandbox.feed(HEATING))["case"]
        card = await sandbox.card("housing", case_id)
        await sandbox.press("housing", "ivanova", card, "Взять")
        card = await sandbox.card("housing", case_id, "Анна Иванова")
        await sandbox.press("housing", "ivanova", card, "Черновик")
        prompt = await sandbox.wait_for("housing", lambda m: m.get("prompt") is True, "a prompt")
        answer = "Здравствуйте! Аварийная бригада выехала, тепло дадут сегодня к 18:00."
        said = await sandbox.say("housing", "ivanova", answer, reply_to=prompt["id"])
        assert said["handled"] is True
        draft = await sandbox.wait_for(
            "housing", lambda m: m.get("kind") == "draft" and "бригада" in text_of(m), "the draft"
        )
        # The author may not approve their own draft; the approver may.
        refused = await sandbox.press("housing", "ivanova", draft, "Одобрить")
        assert refused["alert"] is True
        approved = await sandbox.press("housing", "petrov", draft, "Одобрить")
        assert approved["alert"] is False
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.APPROVED
        assert case.latest_draft is not None and case.latest_draft.status is DraftStatus.APPROVED


async def test_browsers_hear_of_every_new_message_as_a_server_sent_event(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        async with http.get(f"{base}/sandbox/api/events") as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            case_id = (await sandbox.feed(HEATING))["case"]
            while True:
                line = (await stream.content.readline()).decode()
                if line.startswith("data: "):
                    event = json.loads(line.removeprefix("data: "))
                    if event["chat"] == "housing" and event["type"] == "post":
                        break
            assert event["message"]["case_id"] == case_id
            assert event["message"]["kind"] == "card"
            await app.stop()  # the stream ends, so the server can stop
            assert (await stream.content.read()).strip() == b""  # read to its end, promptly


async def test_commands_are_answered_in_reply_and_a_strangers_command_too(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (_, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        case_id = (await sandbox.feed(HEATING))["case"]
        said = await sandbox.say("coordination", "morozova", f"/case {case_id}")
        assert said["handled"] is True
        answer = await sandbox.wait_for(
            "coordination", lambda m: m.get("reply_to") == said["id"], "the answer to /case"
        )
        assert f"№{case_id}" in text_of(answer)
        # Conversation is shown, and is no work for the bot.
        chat = await sandbox.say("coordination", "morozova", "Коллеги, кто сегодня дежурит?")
        assert chat["handled"] is False


async def test_the_coordination_page_shows_a_queued_digest_chart(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        await sandbox.feed(HEATING)
        await app.digest_jobs.run("evening")
        photo = await sandbox.wait_for(
            "coordination", lambda m: m.get("kind") == "photo", "the digest with its chart"
        )
        assert photo["image"].startswith("data:image/png;base64,")
        assert text_of(photo)


async def test_forged_button_data_is_refused_like_telegrams(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        case_id = (await sandbox.feed(HEATING))["case"]
        card = await sandbox.card("housing", case_id)
        for data in ({"k": "c", "case": case_id, "v": 0, "a": "approve", "x": ""}, "garbage", {}):
            status, body = await sandbox.post(
                "press", {"chat": "housing", "as": "ivanova", "message": card["id"], "data": data}
            )
            assert status == 200 and body["alert"] is True, data
        # A press from another department's page is refused too (the wrong chat).
        transport = await sandbox.say("transport", "ivanova", "привет")
        status, body = await sandbox.post(
            "press",
            {
                "chat": "transport",
                "as": "ivanova",
                "message": transport["id"],
                "data": card["buttons"][0][0]["data"],
            },
        )
        assert status == 200 and body["alert"] is True
        assert (await app.cases.get(case_id)).state is CaseState.NEW  # type: ignore[union-attr]


async def test_posts_need_the_sandbox_header_and_a_known_host(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (_, base), aiohttp.ClientSession() as http:
        body = {"text": HEATING, "source": "vk"}
        async with http.post(f"{base}/sandbox/api/feed", json=body) as response:
            assert response.status == 403  # a form on another site cannot add the header
        async with http.get(f"{base}/sandbox", headers={"Host": "evil.example:8080"}) as response:
            assert response.status == 403  # DNS rebinding
        async with http.get(f"{base}/sandbox") as response:
            assert response.status == 200
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        async with http.get(f"{base}/sandbox/static/..%2Fweb.py") as response:
            assert response.status == 404


def _outward_address() -> str | None:
    """This machine's address on its network, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing decides the source address
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def test_a_client_from_the_network_gets_403_unless_remote_access_has_a_token(
    tmp_path: Path, clock: FrozenClock
) -> None:
    outward = _outward_address()
    if outward is None:
        pytest.skip("this machine has no network address other than loopback")
    async with (
        running_example(tmp_path / "local", clock, listen_host="0.0.0.0") as (_, base),
        aiohttp.ClientSession() as http,
    ):
        remote = base.replace("127.0.0.1", outward)
        async with http.get(f"{remote}/sandbox/api/state") as response:
            assert response.status == 403
        async with http.get(f"{base}/sandbox/api/state") as response:
            assert response.status == 200

    remote_access = f"  allow_remote: true\n  token: {TOKEN}"
    async with (
        running_example(tmp_path / "remote", clock, "0.0.0.0", remote_access) as (_, base),
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,  # an IP host
    ):
        remote = base.replace("127.0.0.1", outward)
        for url in (f"{remote}/sandbox/api/state", f"{base}/sandbox/api/state"):
            async with http.get(url) as response:
                assert response.status == 403, url  # loopback needs the token too
        async with http.get(f"{remote}/sandbox?token={'x' * 40}") as response:
            assert response.status == 403
        async with http.get(
            f"{remote}/sandbox/api/state", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response:
            assert response.status == 200
        # The link with the token once; the cookie after that.
        async with http.get(f"{remote}/sandbox?token={TOKEN}") as response:
            assert response.status == 200 and "token" not in str(response.url)
        async with http.post(
            f"{remote}/sandbox/api/feed", json={"text": HEATING, "source": "vk"}, headers=HEADERS
        ) as response:
            assert response.status == 200


def test_remote_access_without_a_long_token_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sandbox\.token"):
        example_config(tmp_path, free_port(), sandbox="  allow_remote: true\n  token: short")


def test_the_sandbox_runs_only_without_a_messenger_unless_enabled(tmp_path: Path) -> None:
    assert example_config(tmp_path, free_port()).sandbox_enabled
    off = example_config(tmp_path, free_port(), sandbox="  enabled: false")
    assert not off.sandbox_enabled


def test_message_text_reaches_the_page_as_text_never_as_markup() -> None:
    tree = parse_html(
        '<b>Кейс</b> &lt;script&gt;alert(1)&lt;/script&gt; <a href="javascript:alert(1)">x</a>'
        ' <a href="https://example.org/p">y</a><img src=x onerror=alert(1)>'
    )
    assert tree == [
        {"tag": "b", "children": ["Кейс"]},
        " <script>alert(1)</script> ",
        {"tag": "a", "children": ["x"]},
        " ",
        {"tag": "a", "href": "https://example.org/p", "children": ["y"]},
    ]


async def test_rate_limits_when_configured(tmp_path: Path, clock: FrozenClock) -> None:
    limited = "  limits:\n    feeds_per_minute: 1"
    async with (
        running_example(tmp_path, clock, sandbox=limited) as (_, base),
        aiohttp.ClientSession() as http,
    ):
        sandbox = SandboxClient(http, base)
        await sandbox.feed(HEATING)
        status, _ = await sandbox.post("feed", {"text": "Опять нет света", "source": "vk"})
        assert status == 429


async def test_the_crisis_checklist_is_ticked_on_the_coordination_page(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        for n in range(15):  # the shipped crisis.yaml's surge, from as many residents
            text = f"Третий день нет отопления в доме {n + 1}, батареи ледяные"
            status, body = await sandbox.post(
                "feed", {"text": text, "source": "vk", "author": f"Житель {n + 1}"}
            )
            assert status == 200 and body["sentiment"] == "negative", body
        clock.advance(timedelta(minutes=1))  # counting windows end before "now"
        await app.crises.evaluate()
        card = await sandbox.wait_for(
            "coordination",
            lambda m: any(label.startswith("⬜ 1.") for label in labels(m)),
            "the crisis card with its checklist",
        )
        first = next(label for label in labels(card) if label.startswith("⬜ 1."))
        # A specialist of a department may not tick the plan; the duty officer may.
        refused = await sandbox.press("coordination", "ivanova", card, first)
        assert refused["alert"] is True
        ticked = await sandbox.press("coordination", "morozova", card, first)
        assert ticked["alert"] is False
        crisis_id = card["buttons"][0][0]["data"]["crisis"]
        (tick,) = await app.crises.checklist(crisis_id)
        assert (tick.step, tick.done, tick.actor) == (0, True, "morozova")
        await sandbox.wait_for(
            "coordination",
            lambda m: m["id"] == card["id"] and any(x.startswith("✅ 1.") for x in labels(m)),
            "the card redrawn with item 1 done",
        )


async def test_drill_scenarios_are_offered_as_feeds_and_open_cases_in_their_departments(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        async with http.get(f"{base}/sandbox/api/state", headers=HEADERS) as response:
            state = await response.json()
        drills = next(f for f in state["feeds"] if f["title"].startswith("Сценарии учений"))
        storylines = {
            (scenario.id, storyline.id): storyline.department
            for scenario in app.playbook.drills.values()
            for storyline in scenario.storylines
        }
        assert len(drills["samples"]) == len(storylines) >= 3
        sample = next(s for s in drills["samples"] if s["id"].startswith("drill:"))
        _, scenario_id, storyline_id = sample["id"].split(":")
        status, fed = await sandbox.post(
            "feed", {"text": sample["text"], "source": sample["source"], "author": sample["author"]}
        )
        assert status == 200 and fed["case"] is not None
        # Fed as an ordinary mention: routing decides, and it is no drill case.
        case = await app.cases.get(fed["case"])
        assert case is not None and not case.drill
        assert storylines[(scenario_id, storyline_id)] in {d.id for d in app.config.departments}


async def test_ids_answer_staff_with_the_chat_and_their_id_and_refuse_strangers(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (_, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        said = await sandbox.say("housing", "morozova", "/ids")
        answer = await sandbox.wait_for(
            "housing", lambda m: m.get("reply_to") == said["id"], "the answer to /ids"
        )
        assert "Чат: housing" in text_of(answer) and "Ваш id: morozova" in text_of(answer)
        said = await sandbox.say("housing", "stranger", "/whoami")
        answer = await sandbox.wait_for(
            "housing", lambda m: m.get("reply_to") == said["id"], "the answer to /whoami"
        )
        assert "нет в списке сотрудников" in text_of(answer) and "housing" not in text_of(answer)


async def test_codes_are_set_from_the_cards_two_level_menu_as_in_telegram(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        case_id = (await sandbox.feed(HEATING))["case"]
        card = await sandbox.card("housing", case_id)
        await sandbox.press("housing", "ivanova", card, "Коды ▸")
        card = await sandbox.wait_for(
            "housing", lambda m: m["id"] == card["id"] and "Район ▸" in labels(m), "dimensions"
        )
        await sandbox.press("housing", "ivanova", card, "Район ▸")
        card = await sandbox.wait_for(
            "housing", lambda m: m["id"] == card["id"] and "Южный" in labels(m), "districts"
        )
        await sandbox.press("housing", "ivanova", card, "Южный")
        await sandbox.wait_for(
            "housing", lambda m: m["id"] == card["id"] and "Район: Южный" in text_of(m), "shown"
        )
        case = await app.cases.get(case_id)
        assert case is not None and "district:south" in case.codes


async def test_reject_asks_for_the_reason_and_the_draft_shows_it(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        case_id = (await sandbox.feed(HEATING))["case"]
        card = await sandbox.card("housing", case_id)
        await sandbox.press("housing", "ivanova", card, "Черновик")
        prompt = await sandbox.wait_for("housing", lambda m: m.get("prompt") is True, "a prompt")
        await sandbox.say("housing", "ivanova", "Пишите в личку", reply_to=prompt["id"])
        draft = await sandbox.wait_for(
            "housing", lambda m: m.get("kind") == "draft" and "личку" in text_of(m), "the draft"
        )
        asked = await sandbox.press("housing", "petrov", draft, "Отклонить")
        assert asked["alert"] is False
        why = await sandbox.wait_for(
            "housing", lambda m: "почему отклоняем" in text_of(m), "the reject prompt"
        )
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.AWAITING_APPROVAL
        said = await sandbox.say("housing", "petrov", "Ответим публично", reply_to=why["id"])
        assert said["handled"] is True
        await sandbox.wait_for(
            "housing",
            lambda m: (
                m.get("kind") == "draft"
                and "Отклонён — Сергей Петров: Ответим публично" in text_of(m)
            ),
            "the rejected draft",
        )
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.TAKEN
        assert case.latest_draft is not None and case.latest_draft.note == "Ответим публично"


async def test_a_joined_mention_is_split_off_with_split_in_the_sandbox(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        bus = "Автобус 42 опять не пришёл, стоим на остановке на улице Мицкевича уже час"
        first = await sandbox.feed(bus)
        second = await sandbox.feed(bus.replace("уже час", "больше часа"))
        case_id = first["case"]
        assert second["case"] == case_id and first["department"] == "transport"
        said = await sandbox.say("transport", "smirnova", f"/case {case_id}")
        answer = await sandbox.wait_for(
            "transport", lambda m: m.get("reply_to") == said["id"], "the answer to /case"
        )
        mention_id = int(text_of(answer).split("/split ")[1].split()[0])  # the second one's
        said = await sandbox.say("transport", "smirnova", f"/split {mention_id}")
        answer = await sandbox.wait_for(
            "transport", lambda m: m.get("reply_to") == said["id"], "the answer to /split"
        )
        new_id = case_id + 1
        assert f"выделено в кейс №{new_id}" in text_of(answer)
        await sandbox.card("transport", new_id)  # the new case's own card
        old, new = await app.cases.get(case_id), await app.cases.get(new_id)
        assert old is not None and new is not None
        assert (old.mention_count, new.mention_count) == (1, 1)
