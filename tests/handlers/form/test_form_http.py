"""The web form over HTTP against a started Otklik (the example config, its form on): an
appeal becomes a case with an e-mail or phone author and a reference number; every refusal
is a 4xx page with its reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.cases.replies import FORM_SOURCE
from bot.clock import FrozenClock
from bot.model import CaseState
from handlers.form.web import COOKIE, MAX_BODY
from tests.doubles.form import load_form, running_form, token_in

HEATING = "Третий день нет отопления в доме на Ленина, 5, батареи ледяные"
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # a Monday morning in Moscow


def filled(token: str, **fields: str) -> dict[str, str]:
    return {
        "csrf": token,
        "name": "Пётр Сидоров",
        "contact": "Petr.Sidorov@Example.RU",
        "text": HEATING,
        "department": "",
        "website": "",
        **fields,
    }


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies of an IP address (127.0.0.1) as a browser does
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def test_an_appeal_opens_a_case_with_the_email_author_and_shows_its_reference(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_form(tmp_path) as (app, base):
        async with http.get(f"{base}/form") as response:
            assert response.status == 200
            page = await response.text()
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
            cookie = response.cookies[COOKIE]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert '<html lang="ru">' in page and '<label for="contact">' in page
        assert 'value="transport"' in page and 'value="coordination"' not in page
        token = token_in(page)

        async with http.post(f"{base}/form", data=filled(token)) as response:
            assert response.status == 200
            done = await response.text()
        assert "Сообщение принято" in done
        reference = done.split('<span class="number">', 1)[1].split("<", 1)[0]
        assert reference.startswith("F-") and len(reference) == 11
        assert "petr.sidorov@example.ru" in done

        async with app.database.uow() as uow:
            mention = await uow.mentions.get_by_external(FORM_SOURCE, reference)
        assert mention is not None and mention.case_id is not None
        assert (mention.author.channel, mention.author.external_id) == (
            "email",
            "petr.sidorov@example.ru",
        )
        case = await app.cases.get(mention.case_id)
        assert case is not None and case.department == "housing"  # the rule, not a choice
        assert case.state is CaseState.NEW

        # The same loaded form sent again (the back button) is the same appeal.
        async with http.post(f"{base}/form", data=filled(token)) as response:
            assert response.status == 200
            again = await response.text()
        assert reference in again and "уже было принято" in again


async def test_a_polite_question_opens_a_case_in_the_department_the_citizen_chose(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_form(tmp_path) as (app, base):
        token = await load_form(http, base)
        data = filled(
            token,
            contact="8 (912) 345-67-89",
            text="Прошу ответить на моё письмо от прошлой недели",  # no rule; the router unsure
            department="education",
        )
        async with http.post(f"{base}/form", data=data) as response:
            assert response.status == 200
            done = await response.text()
        assert "+79123456789" in done
        async with app.database.uow() as uow:
            (mention,) = await uow.mentions.for_case(1)
        assert mention.source == FORM_SOURCE
        assert (mention.author.channel, mention.author.external_id) == ("phone", "+79123456789")
        case = await app.cases.get(1)
        assert case is not None and case.department == "education"

        # The learned router overrules a citizen's choice as it would a rule: when it is at
        # least learned.overrule_confidence sure of another department.
        token = await load_form(http, base)
        data = filled(
            token, text="Подскажите, пожалуйста, как записаться на приём", department="social"
        )
        async with http.post(f"{base}/form", data=data) as response:
            assert response.status == 200
        case = await app.cases.get(2)
        assert case is not None and case.department == "health"


async def test_english_by_accept_language_or_by_the_link(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_form(tmp_path) as (_, base):
        async with http.get(
            f"{base}/form", headers={"Accept-Language": "de-DE, en;q=0.8, ru;q=0.5"}
        ) as response:
            page = await response.text()
        assert '<html lang="en">' in page and "Your message" in page
        async with http.get(f"{base}/form?lang=ru", headers={"Accept-Language": "en"}) as r:
            assert '<html lang="ru">' in await r.text()


async def test_missing_and_wrong_fields_come_back_with_their_reasons_and_the_words(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_form(tmp_path) as (app, base):
        token = await load_form(http, base)
        data = filled(token, name="", contact="not a contact", text="Моё <b>обращение</b>")
        async with http.post(f"{base}/form", data=data) as response:
            assert response.status == 422
            page = await response.text()
        assert 'role="alert"' in page and "ошибок: 2" in page
        assert "Напишите, как к вам обращаться." in page
        assert "ни на e-mail, ни на номер телефона" in page
        assert 'id="contact"' in page and 'aria-invalid="true"' in page
        # The person's words come back, escaped.
        assert "Моё &lt;b&gt;обращение&lt;/b&gt;" in page and "<b>" not in page
        data = filled(token, department="nowhere", text="x" * 5_001)
        async with http.post(f"{base}/form", data=data) as response:
            assert response.status == 422
            page = await response.text()
        assert "не больше 5000 знаков" in page and "Выберите отдел из списка." in page
        assert await app.cases.get(1) is None  # nothing was taken in


async def test_a_forged_missing_or_expired_token_is_refused_with_403(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = FrozenClock(NOW)
    async with running_form(tmp_path, clock, per_hour=0) as (app, base):
        token = await load_form(http, base)
        issued, nonce, mac = token.split(".")
        forged = f"{issued}.{nonce}.{'0' * len(mac)}"
        # Another site's page: it can post, but has neither our cookie nor a signed token.
        async with (
            aiohttp.ClientSession() as elsewhere,
            elsewhere.post(f"{base}/form", data=filled(token)) as response,
        ):
            assert response.status == 403
            assert "Форма устарела" in await response.text()
        for bad in (forged, "", "1.2.3"):
            http.cookie_jar.update_cookies({COOKIE: bad})
            async with http.post(f"{base}/form", data=filled(bad)) as response:
                assert response.status == 403, bad
        http.cookie_jar.update_cookies({COOKIE: token})
        clock.set(NOW + timedelta(minutes=121))  # token_minutes: 120
        async with http.post(f"{base}/form", data=filled(token)) as response:
            assert response.status == 403
        assert await app.cases.get(1) is None


async def test_the_honeypot_and_the_rate_limit_refuse_robots(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = FrozenClock(NOW)
    async with running_form(tmp_path, clock, per_hour=2) as (app, base):
        token = await load_form(http, base)
        async with http.post(
            f"{base}/form", data=filled(token, website="https://spam.example")
        ) as response:
            assert response.status == 400
            assert "программы-роботы" in await response.text()
        token = await load_form(http, base)
        async with http.post(f"{base}/form", data=filled(token)) as response:
            assert response.status == 200  # the second counted POST of the hour
        token = await load_form(http, base)
        async with http.post(f"{base}/form", data=filled(token)) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "3600"
            assert "Попробуйте через час" in await response.text()
        clock.set(NOW + timedelta(hours=1))  # an hour later the address may send again
        async with http.post(f"{base}/form", data=filled(token)) as response:
            assert response.status == 200
        async with app.database.uow() as uow:
            assert len(await uow.mentions.for_case(1)) + len(await uow.mentions.for_case(2)) == 2


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_form(tmp_path, per_hour=1, trusted_proxies="[127.0.0.1]") as (_, base):
        for client in ("203.0.113.7", "203.0.113.8"):
            token = await load_form(http, base)
            # What the client wrote itself (left) is not believed; the proxy's hop is.
            forwarded = {"X-Forwarded-For": f"198.51.100.1, {client}"}
            async with http.post(f"{base}/form", data=filled(token), headers=forwarded) as r:
                assert r.status == 200, client
        token = await load_form(http, base)
        forwarded = {"X-Forwarded-For": "203.0.113.8"}
        async with http.post(f"{base}/form", data=filled(token), headers=forwarded) as r:
            assert r.status == 429


async def test_oversize_unreadable_and_not_a_form_are_refused(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_form(tmp_path) as (app, base):
        token = await load_form(http, base)
        async with http.post(f"{base}/form", data=filled(token, text="я" * MAX_BODY)) as response:
            assert response.status == 413
            assert "слишком большое" in await response.text()
        async with http.post(f"{base}/form", json=filled(token)) as response:
            assert response.status == 415
        async with http.post(
            f"{base}/form",
            data=b"csrf=1&name=%FF%FE",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response:
            assert response.status == 400
        async with http.post(
            f"{base}/form",
            data=f"csrf={token}&name=a&name=b",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response:
            assert response.status == 400
        assert await app.cases.get(1) is None


async def test_the_form_is_not_served_unless_enabled(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    from tests.doubles.sandbox import running_example

    async with running_example(tmp_path) as (_, base), http.get(f"{base}/form") as response:
        assert response.status == 404
