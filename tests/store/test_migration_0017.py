"""Migration 0017 and the drafts' approval chains on both backends: a draft's tiers and its
approvals round-trip; drafts written before 0017 come back with one tier, and an approved one
with that tier's approval (who reviewed it, when); downgrading drops the columns only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect

from bot.cases.lifecycle import invariant_violations
from bot.model import (
    Approval,
    ApproverRole,
    Case,
    CaseState,
    Draft,
    DraftStatus,
    Priority,
)
from store.db import Database

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
M = timedelta(minutes=1)
HIGH = (ApproverRole.DEPARTMENT, ApproverRole.PRESS_SECRETARY)


def _case(*drafts: Draft, state: CaseState = CaseState.AWAITING_APPROVAL) -> Case:
    return Case(
        id=None,
        department="housing",
        state=state,
        priority=Priority.HIGH,
        created_at=T0,
        source="vk",
        assignee="spec",
        drafts=drafts,
    )


async def _columns(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_columns("drafts"))
    return {column["name"] for column in found}


async def test_tiers_and_approvals_round_trip(database: Database) -> None:
    pending = Draft(
        1,
        "Мы разбираемся",
        "spec",
        T0,
        tiers=HIGH,
        approvals=(Approval(0, "appr", T0 + 5 * M),),
    )
    async with database.uow() as uow:
        case = await uow.cases.add(_case(pending))
        await uow.commit()
    assert case.id is not None
    approved = replace(
        pending,
        status=DraftStatus.APPROVED,
        reviewer="press",
        reviewed_at=T0 + 9 * M,
        approvals=(*pending.approvals, Approval(1, "press", T0 + 9 * M)),
    )
    done = replace(case, state=CaseState.APPROVED, drafts=(approved,), version=1)
    async with database.uow() as uow:
        await uow.cases.save(done, expected_version=0)
        await uow.commit()
    async with database.uow() as uow:
        loaded = await uow.cases.get(case.id)
    assert loaded is not None and loaded.drafts == (approved,)
    assert all(a.at.tzinfo is not None for a in loaded.drafts[0].approvals)


async def test_migration_0017_gives_old_drafts_their_one_tier_and_back(
    database: Database,
) -> None:
    # Drafts as 0016 knew them: the new columns are dropped by the downgrade, rows stay.
    reviewed = Draft(
        1,
        "v1",
        "spec",
        T0,
        status=DraftStatus.APPROVED,
        reviewer="appr",
        reviewed_at=T0 + 7 * M,
        approvals=(Approval(0, "appr", T0 + 7 * M),),
    )
    template = Draft(
        1, "Видим ваше сообщение", "spec", T0, status=DraftStatus.APPROVED, pre_approved=True
    )
    waiting = Draft(1, "v1", "spec", T0)
    async with database.uow() as uow:
        first = await uow.cases.add(_case(reviewed, state=CaseState.APPROVED))
        second = await uow.cases.add(_case(template, state=CaseState.APPROVED))
        third = await uow.cases.add(_case(waiting))
        await uow.commit()

    await database.downgrade("0016")
    assert {"tiers", "approvals"}.isdisjoint(await _columns(database))
    await database.upgrade()
    assert {"tiers", "approvals"} <= await _columns(database)

    async with database.uow() as uow:
        loaded = await uow.cases.get_many([c.id for c in (first, second, third) if c.id])
    drafts = [loaded[c.id].drafts[0] for c in (first, second, third) if c.id]
    assert [d.tiers for d in drafts] == [(ApproverRole.DEPARTMENT,)] * 3
    # The approved draft's one tier was approved by its reviewer, then; nothing else was.
    assert [d.approvals for d in drafts] == [(Approval(0, "appr", T0 + 7 * M),), (), ()]
    assert all(invariant_violations(case) == [] for case in loaded.values())
