"""Where an answer by e-mail goes: a letter, or a form appeal that left an e-mail address;
never a name an API client could give its mentions, and never an address in clear."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.cases.replies import EMAIL_CHAT, Origin, origin_of
from bot.model import Identity, Mention
from bot.settings.connections import reserved_source_name

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def _mention(source: str, channel: str, mention_id: int | None = 5) -> Mention:
    return Mention(
        id=mention_id,
        source=source,
        external_id="a1@mail.example",
        text="Нет воды",
        author=Identity(channel, "petr@mail.example"),
        received_at=NOW,
    )


def test_letters_and_form_appeals_with_an_address_are_answered_by_e_mail() -> None:
    expected = Origin("email", EMAIL_CHAT, "5")
    assert origin_of(_mention("email", "email"), frozenset()) == expected
    assert origin_of(_mention("form", "email"), frozenset()) == expected
    # The origin names the stored mention, not the address: the outbox keeps no address.
    assert "petr" not in repr(expected)


def test_no_e_mail_answer_without_an_address_or_a_stored_mention() -> None:
    assert origin_of(_mention("form", "phone"), frozenset()) is None
    assert origin_of(_mention("email", "email", None), frozenset()) is None
    assert origin_of(_mention("vk", "email"), frozenset()) is None


def test_api_clients_cannot_pose_as_the_mailbox_or_the_form() -> None:
    assert reserved_source_name("email") is not None
    assert reserved_source_name("Form") is not None


def test_the_case_of_an_answer_is_read_from_its_key_only() -> None:
    from bot.cases.cards import case_of_public_ref

    assert case_of_public_ref("public:17:2") == 17
    assert case_of_public_ref("card:17:housing") is None
    assert case_of_public_ref("public:x:2") is None
