"""Telegram updates claimed by id (webhook mode), on SQLite and PostgreSQL: a retried
delivery finds its update done or in hand; a stale claim is taken over; a released one is
claimed afresh; old rows are pruned; a claim in hand is renewed, and so never goes stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.db import Database
from store.repos.telegram_updates import UpdateClaim

BOT = 123456
T0 = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
RECLAIM = timedelta(seconds=60)


async def claim(database: Database, update_id: int, instance: str, now: datetime) -> UpdateClaim:
    async with database.uow() as uow:
        result = await uow.telegram_updates.claim(BOT, update_id, instance, now, now - RECLAIM)
        await uow.commit()
    return result


async def test_an_update_is_claimed_once_then_done(database: Database) -> None:
    assert await claim(database, 1, "a", T0) is UpdateClaim.TAKEN
    # Telegram's retry while "a" still handles it, on either instance
    assert await claim(database, 1, "b", T0 + timedelta(seconds=5)) is UpdateClaim.BUSY
    assert await claim(database, 1, "a", T0 + timedelta(seconds=5)) is UpdateClaim.BUSY
    async with database.uow() as uow:
        await uow.telegram_updates.done(BOT, [1], T0 + timedelta(seconds=6))
        await uow.commit()
    assert await claim(database, 1, "b", T0 + timedelta(hours=1)) is UpdateClaim.DONE
    # another bot's update 1 is another update
    async with database.uow() as uow:
        other = await uow.telegram_updates.claim(999, 1, "a", T0, T0 - RECLAIM)
        await uow.commit()
    assert other is UpdateClaim.TAKEN


async def test_a_stale_claim_is_taken_over_and_a_released_one_claimed_afresh(
    database: Database,
) -> None:
    assert await claim(database, 2, "dead", T0) is UpdateClaim.TAKEN
    assert await claim(database, 2, "b", T0 + RECLAIM) is UpdateClaim.BUSY  # not older yet
    later = T0 + RECLAIM + timedelta(seconds=1)
    assert await claim(database, 2, "b", later) is UpdateClaim.TAKEN
    assert await claim(database, 2, "c", later) is UpdateClaim.BUSY  # b holds it now

    assert await claim(database, 3, "a", T0) is UpdateClaim.TAKEN
    async with database.uow() as uow:
        await uow.telegram_updates.release(BOT, 3, "someone else")  # not theirs: stays
        await uow.commit()
    assert await claim(database, 3, "b", T0) is UpdateClaim.BUSY
    async with database.uow() as uow:
        await uow.telegram_updates.release(BOT, 3, "a")
        await uow.commit()
    assert await claim(database, 3, "b", T0) is UpdateClaim.TAKEN


async def test_old_updates_are_pruned(database: Database) -> None:
    assert await claim(database, 4, "a", T0) is UpdateClaim.TAKEN
    assert await claim(database, 5, "a", T0 + timedelta(days=3)) is UpdateClaim.TAKEN
    async with database.uow() as uow:
        assert await uow.telegram_updates.prune(T0 + timedelta(days=1)) == 1
        await uow.commit()
    assert await claim(database, 4, "b", T0 + timedelta(days=3)) is UpdateClaim.TAKEN
    assert await claim(database, 5, "b", T0 + timedelta(days=3)) is UpdateClaim.BUSY


async def test_a_renewed_claim_stays_in_hand_and_one_left_unrenewed_is_taken_over(
    database: Database,
) -> None:
    assert await claim(database, 6, "slow", T0) is UpdateClaim.TAKEN
    # Handling outlasts the reclaim time twice over; renewed all along, nobody takes it.
    for seconds in (30, 60, 90, 120):
        async with database.uow() as uow:
            assert (
                await uow.telegram_updates.renew(BOT, [6], "slow", T0 + timedelta(seconds=seconds))
                == 1
            )
            await uow.commit()
        at = T0 + timedelta(seconds=seconds + 30)
        assert await claim(database, 6, "b", at) is UpdateClaim.BUSY
    # "slow" died after its last renewal: a reclaim time later the claim is stale.
    later = T0 + timedelta(seconds=120) + RECLAIM + timedelta(seconds=1)
    assert await claim(database, 6, "b", later) is UpdateClaim.TAKEN
    async with database.uow() as uow:  # not "slow"'s any more: its renewal says so
        assert await uow.telegram_updates.renew(BOT, [6], "slow", later) == 0
        await uow.commit()
    assert await claim(database, 6, "c", later) is UpdateClaim.BUSY


async def test_a_batch_is_claimed_at_once_whatever_its_updates_went_through(
    database: Database,
) -> None:
    assert await claim(database, 10, "old", T0) is UpdateClaim.TAKEN  # handled, done
    async with database.uow() as uow:
        await uow.telegram_updates.done(BOT, [10], T0)
        await uow.commit()
    assert await claim(database, 11, "old", T0 + RECLAIM) is UpdateClaim.TAKEN  # in hand
    assert await claim(database, 12, "dead", T0) is UpdateClaim.TAKEN  # its instance died
    later = T0 + RECLAIM + timedelta(seconds=1)
    async with database.uow() as uow:
        claims = await uow.telegram_updates.claim_many(
            BOT, [10, 11, 12, 13, 14], "new", later, later - RECLAIM
        )
        await uow.commit()
    assert claims == {
        10: UpdateClaim.DONE,
        11: UpdateClaim.BUSY,
        12: UpdateClaim.TAKEN,
        13: UpdateClaim.TAKEN,
        14: UpdateClaim.TAKEN,
    }
    assert await claim(database, 13, "old", later) is UpdateClaim.BUSY  # "new" holds them
