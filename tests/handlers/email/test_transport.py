"""The e-mail transport against real servers (aiosmtpd delivering into pymap): the same
outbox item sends one letter however often it is delivered; a copy left "about to send"
(a crash inside the SMTP exchange) is sent again, on purpose; refusals say why."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from bot.clock import FrozenClock
from bot.messages.outbox import Delivery, OutboxItem, OutboxOp, PermanentFailure
from bot.messages.texts import texts_for
from bot.messages.views import public_reply_view
from bot.model import Identity, Mention
from bot.settings.mail import EmailConfig
from handlers.email.transport import EmailTransport, message_id_for, reply_subject
from tests.doubles.mail import MailWorld, mail_world
from tests.doubles.support import ROOT

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def _letter_mention(address: str, mention_id: int = 7) -> Mention:
    return Mention(
        id=mention_id,
        source="email",
        external_id="first@mail.example",
        text="Re: Отв: Нет воды\n\nТретий день нет воды",
        author=Identity("email", address, "Пётр"),
        received_at=NOW,
        story_id="root@mail.example",
    )


def _transport(mail: MailWorld, mentions: dict[int, Mention]) -> EmailTransport:
    config = EmailConfig.model_validate(yaml.safe_load(mail.config())["email"])

    async def lookup(mention_id: int) -> Mention | None:
        return mentions.get(mention_id)

    texts = texts_for(ROOT / "playbooks" / "templates", "en")
    return EmailTransport(config, lookup, texts, FrozenClock(NOW), "--\nThe Council")


def _item(
    mention_id: int = 7, key: str = "email:letters:publish:3:1", op: OutboxOp = OutboxOp.REPLY
) -> Delivery:
    return Delivery(
        OutboxItem(
            transport="email",
            chat="letters",
            op=op,
            payload=public_reply_view("The water is back by 18:00."),
            idempotency_key=key,
            reply_to_key=f"ext:{mention_id}",
            case_id=3,
            id=1,
        )
    )


async def _set_draft(mail: MailWorld) -> None:
    client = await mail.organisation.client()
    try:
        assert (await client.select("Sent")).result == "OK"
        done = await client.uid("store", "1:*", "+FLAGS.SILENT (\\Draft)")
        assert done.result == "OK"
    finally:
        await client.logout()


async def test_one_item_is_one_letter_and_a_copy_left_mid_send_is_sent_again() -> None:
    async with mail_world() as mail:
        transport = _transport(mail, {7: _letter_mention(mail.citizen.address)})
        result = await transport.deliver(_item())
        again = await transport.deliver(_item())  # the worker re-delivers after a crash
        assert result.external_ref == again.external_ref
        assert result.external_ref == message_id_for("email:letters:publish:3:1", "city.example")
        (letter,) = [m for m, _ in await mail.citizen.letters()]
        assert letter["Subject"] == "Re: Нет воды"  # one "Re:", the thread's own subject
        assert letter["In-Reply-To"] == "<first@mail.example>"
        assert letter["References"] == "<root@mail.example> <first@mail.example>"
        body = letter.get_content().replace("\r\n", "\n").rstrip()
        assert body == "The water is back by 18:00.\n\n--\nThe Council"

        # Filed as about to send, never confirmed: nobody knows whether SMTP took it, so
        # the answer goes again, with the same Message-ID.
        await _set_draft(mail)
        await transport.deliver(_item())
        letters = [m for m, _ in await mail.citizen.letters()]
        assert [m["Message-ID"] for m in letters] == [result.external_ref] * 2
        sent = await mail.organisation.letters("Sent")
        assert len(sent) == 1 and "\\Draft" not in sent[0][1]


async def test_refusals_say_why() -> None:
    async with mail_world() as mail:
        transport = _transport(
            mail,
            {
                7: _letter_mention("nobody@mail.example"),  # the server knows no such box
                8: _letter_mention("[erased]", 8),
            },
        )
        with pytest.raises(PermanentFailure, match="refused") as refused:
            await transport.deliver(_item(7, "k1"))
        assert "nobody" not in str(refused.value)  # the error column keeps no address
        with pytest.raises(PermanentFailure, match="erased"):
            await transport.deliver(_item(8, "k2"))
        with pytest.raises(PermanentFailure, match="gone"):
            await transport.deliver(_item(9, "k3"))
        assert await mail.citizen.letters() == []


def test_reply_subject() -> None:
    assert reply_subject("Нет воды") == "Re: Нет воды"
    assert reply_subject("RE: re:  Отв: Нет воды") == "Re: Нет воды"
    assert reply_subject("") == "Re:"


async def test_a_correction_is_a_new_letter_that_says_so() -> None:
    async with mail_world() as mail:
        transport = _transport(mail, {7: _letter_mention(mail.citizen.address)})
        await transport.deliver(_item())
        await transport.deliver(_item(key="email:letters:correct:3:2", op=OutboxOp.EDIT))
        first, correction = [m for m, _ in await mail.citizen.letters()]
        assert first["Message-ID"] != correction["Message-ID"]
        assert correction["In-Reply-To"] == "<first@mail.example>"
        body = correction.get_content().replace("\r\n", "\n")
        assert body.startswith("Correction to our reply above:\nThe water is back by 18:00.")


async def test_a_copy_the_server_filed_itself_proves_the_letter_went_out() -> None:
    async with mail_world() as mail:
        transport = _transport(mail, {7: _letter_mention(mail.citizen.address)})
        await transport.deliver(_item())
        await _set_draft(mail)  # our copy says "about to send" (a crash mid-SMTP) ...
        (letter,) = [m for m, _ in await mail.citizen.letters()]
        await mail.organisation.append(letter.as_bytes(), "Sent")  # ... the server's does not
        await transport.deliver(_item())
        assert len(await mail.citizen.letters()) == 1
