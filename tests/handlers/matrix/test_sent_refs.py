"""What the Matrix transport knows of the messages it has just sent, before the outbox
records their ids: as the outbox's records, the latest message under a key, in bounded memory."""

from __future__ import annotations

from nio import AsyncClient

from bot.messages.outbox import OutboxItem, OutboxOp
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.messages.views import card_ref
from handlers.matrix.render import MatrixRenderer
from handlers.matrix.transport import SENT_REMEMBERED, MatrixTransport

ROOM = "!housing:example.org"


def sent(transport: MatrixTransport, ref_key: str | None, event: str, room: str = ROOM) -> None:
    item = OutboxItem("matrix", room, OutboxOp.POST, {"view": "card"}, f"k{event}", ref_key)
    transport._remember_sent(item, event)


def test_a_sent_message_is_known_by_its_event_until_another_takes_its_key() -> None:
    transport = MatrixTransport(
        AsyncClient("http://127.0.0.1:9"), MatrixRenderer(texts_for(DEFAULT_TEMPLATES_DIR, "ru"))
    )
    card = card_ref(7, "housing")
    sent(transport, card, "$first")
    sent(transport, None, "$notice")  # no key: nothing to press on
    assert transport.ref_of_sent(ROOM, "$first") == card
    assert transport.ref_of_sent("!other:example.org", "$first") is None
    assert transport.ref_of_sent(ROOM, "$notice") is None

    sent(transport, card, "$again")  # the card posted anew: the old message no longer stands
    assert transport.ref_of_sent(ROOM, "$first") is None
    assert transport.ref_of_sent(ROOM, "$again") == card

    for n in range(SENT_REMEMBERED):
        sent(transport, card_ref(100 + n, "housing"), f"${n}")
    assert transport.ref_of_sent(ROOM, "$again") is None  # forgotten: the outbox knows it
    assert transport.ref_of_sent(ROOM, f"${SENT_REMEMBERED - 1}") is not None
    assert len(transport._sent) == SENT_REMEMBERED
    assert len(transport._latest) == SENT_REMEMBERED
