"""Where the bot itself may post an approved answer (bot/cases/replies.py origin_of)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.cases.replies import TELEGRAM_DM_SOURCE, Origin, origin_of
from bot.model import Identity, Mention

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def mention(source: str, external_id: str) -> Mention:
    return Mention(
        source=source,
        external_id=external_id,
        text="нет воды",
        author=Identity("telegram", "7777", "Пётр"),
        received_at=NOW,
    )


def test_a_private_message_is_answered_in_its_own_chat_as_a_reply() -> None:
    assert origin_of(mention(TELEGRAM_DM_SOURCE, "7777:42"), frozenset()) == Origin(
        "telegram", "7777", "42"
    )


@pytest.mark.parametrize("external_id", ["-100123:42", "7777", "7777:", "abc:1", "٣:1", "0:1"])
def test_a_private_message_record_that_names_no_private_chat_has_no_origin(
    external_id: str,
) -> None:
    assert origin_of(mention(TELEGRAM_DM_SOURCE, external_id), frozenset()) is None


def test_a_comment_needs_its_discussion_group_configured() -> None:
    comment = mention("telegram", "-100123:42")
    assert origin_of(comment, frozenset()) is None
    assert origin_of(comment, frozenset({"-100123"})) == Origin("telegram", "-100123", "42")
