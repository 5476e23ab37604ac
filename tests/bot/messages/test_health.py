"""Channel health on its own: what came in, what failed and since when, per channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.messages.health import ChannelHealth, source_family

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_sources_fold_into_their_channel() -> None:
    assert source_family("rss:news") == "rss"
    assert source_family("telegram_dm") == "telegram_dm"
    assert source_family("form") == "form"
    assert source_family("monitoring", {"monitoring"}) == "api"
    assert source_family("vk") == "vk"


def test_a_failing_streak_starts_at_its_first_failure_and_ends_at_a_delivery() -> None:
    health = ChannelHealth(["monitoring"])
    health.received("monitoring", T0)
    health.received("rss:news", T0 + MINUTE)
    health.delivered("telegram", T0)
    health.failed("telegram", T0 + MINUTE, "TelegramNetworkError: down")
    health.failed("telegram", T0 + 5 * MINUTE, "TelegramNetworkError: still down")
    api, rss, telegram = health.states()
    assert (api.channel, api.last_received_at) == ("api", T0)
    assert (rss.channel, rss.last_received_at, rss.failing) == ("rss", T0 + MINUTE, False)
    assert telegram.failing_since == T0 + MINUTE  # the streak's start, not the latest
    assert telegram.last_error == "TelegramNetworkError: still down"
    assert telegram.failing_for(T0 + 16 * MINUTE) == 15 * 60
    health.delivered("telegram", T0 + 20 * MINUTE)
    telegram = health.states()[2]
    assert not telegram.failing and telegram.last_error is None
    assert telegram.failing_for(T0 + 21 * MINUTE) is None
    assert telegram.last_delivered_at == T0 + 20 * MINUTE


def test_a_reason_is_bounded() -> None:
    health = ChannelHealth()
    health.failed("vk", T0, "x" * 5_000)
    (vk,) = health.states()
    assert len(vk.last_error or "") == 200


def test_a_message_refused_for_good_does_not_make_its_channel_fail() -> None:
    health = ChannelHealth()
    health.delivered("vk", T0)
    health.failed("vk", T0 + MINUTE, "VK error 100: reply_to_comment is invalid", permanent=True)
    (vk,) = health.states()
    assert not vk.failing and vk.failing_for(T0 + 20 * MINUTE) is None
    health.failed("vk", T0 + 2 * MINUTE, "VK error 6: too many requests")
    (vk,) = health.states()
    assert vk.failing_since == T0 + 2 * MINUTE
