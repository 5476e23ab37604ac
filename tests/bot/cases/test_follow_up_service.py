"""Follow-ups and corrections through the case service over a real SQLite file: what goes
into the outbox (a reply under the citizen's comment, an edit of the bot's reply, a new reply
that says it corrects), keyed by draft version; the prompts; both languages' wording."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.replies import telegram_comment_id
from bot.clock import FrozenClock
from bot.messages.outbox import OutboxItem, OutboxOp
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.model import Action, CaseState, DraftKind
from bot.settings.fields import LOCALES
from store.db import Database
from tests.bot.cases.test_service import full_service, queued, staff
from tests.doubles.support import make_mention


def _public(items: list[OutboxItem], case_id: int) -> list[OutboxItem]:
    return [i for i in items if i.case_id == case_id and i.payload["view"] == "public_reply"]


async def test_a_correction_edits_the_bots_reply_or_says_it_corrects(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases, directory = full_service(tmp_path, database, clock)
    spec, appr = staff(directory, "spec"), staff(directory, "appr")
    comment = replace(
        make_mention("x", clock.now()),
        source="telegram",
        external_id=telegram_comment_id(-100500, 77),
    )
    opened = await cases.intake(comment, CaseOpening("housing"))
    assert opened.case is not None and opened.case.id is not None
    case_id = opened.case.id

    async def act(request: ActionRequest, who: object = spec) -> None:
        result = await cases.act(case_id, request, who)  # type: ignore[arg-type]
        assert result.ok, result.error

    # The answer was posted by hand (before the bot could publish here): no reply to edit.
    await act(ActionRequest(Action.DRAFT, text="Ответ"))
    await act(ActionRequest(Action.APPROVE), appr)
    await act(ActionRequest(Action.MARK_PUBLISHED))
    await act(ActionRequest(Action.CORRECT, text="Ответ, исправленный"))
    await act(ActionRequest(Action.APPROVE), appr)
    await act(ActionRequest(Action.PUBLISH))
    (first,) = _public(await queued(database), case_id)
    assert (first.op, first.reply_to_key, first.ref_key, first.idempotency_key) == (
        OutboxOp.REPLY,
        "ext:77",
        f"public:{case_id}:2",
        f"telegram:-100500:correct:{case_id}:2",
    )
    assert first.payload == {
        "view": "public_reply",
        "text": "Ответ, исправленный",
        "corrects": True,
    }

    # Delivered: the bot's reply is in the group now.
    async with database.uow() as uow:
        assert first.id is not None
        await uow.outbox.mark_delivered(first.id, clock.now(), "900")
        await uow.refs.put("telegram", "-100500", f"public:{case_id}:2", "900")
        await uow.commit()

    # A second correction edits that reply of the bot's, which keeps saying it corrects; the
    # key names the new version.
    await act(ActionRequest(Action.CORRECT, text="Ответ, исправленный дважды"))
    await act(ActionRequest(Action.APPROVE), appr)
    await act(ActionRequest(Action.PUBLISH))
    _, second = _public(await queued(database), case_id)
    assert (second.op, second.ref_key, second.idempotency_key) == (
        OutboxOp.EDIT,
        f"public:{case_id}:2",
        f"telegram:-100500:correct:{case_id}:3",
    )
    assert second.payload == {
        "view": "public_reply",
        "text": "Ответ, исправленный дважды",
        "corrects": True,
    }

    # The same items queued again (a retried transaction) are kept once, by their keys.
    async with database.uow() as uow:
        assert await uow.outbox.enqueue([replace(first, id=None), replace(second, id=None)]) == 0
        await uow.commit()

    # A follow-up is a new reply under the comment; the card shows what is public meanwhile.
    await act(ActionRequest(Action.FOLLOW_UP, text="Результат: всё сделано"))
    cards = [
        i
        for i in await queued(database)
        if i.case_id == case_id and i.payload["view"] == "card"  # edits fold into the post
    ]
    shown = cards[-1].payload
    assert shown["draft"]["kind"] == "follow_up"  # type: ignore[index]
    assert shown["published"]["text"] == "Ответ, исправленный дважды"  # type: ignore[index]
    assert shown["published"]["kind"] == "correction"  # type: ignore[index]
    await act(ActionRequest(Action.APPROVE), appr)
    await act(ActionRequest(Action.PUBLISH))
    *_, follow_up = _public(await queued(database), case_id)
    assert (follow_up.op, follow_up.reply_to_key, follow_up.idempotency_key) == (
        OutboxOp.REPLY,
        "ext:77",
        f"telegram:-100500:publish:{case_id}:4",
    )
    case = await cases.get(case_id)
    assert case is not None and case.state is CaseState.PUBLISHED
    assert case.published_draft is not None and case.published_draft.kind is DraftKind.FOLLOW_UP


async def test_the_follow_up_prompt_offers_the_follow_up_templates(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases, directory = full_service(tmp_path, database, clock)
    spec, appr = staff(directory, "spec"), staff(directory, "appr")
    opened = await cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
    assert opened.case is not None and opened.case.id is not None
    case_id = opened.case.id
    where = directory.destinations("housing")[0]
    # Nothing public and no move to private yet: refused before anyone writes a word.
    assert not (await cases.prompt(case_id, Action.FOLLOW_UP, spec, where, "n0")).ok
    await cases.act(case_id, ActionRequest(Action.DRAFT, text="Ответ"), spec)
    await cases.act(case_id, ActionRequest(Action.APPROVE), appr)
    await cases.act(case_id, ActionRequest(Action.MARK_PUBLISHED), spec)
    assert (await cases.prompt(case_id, Action.FOLLOW_UP, spec, where, "n1")).ok
    assert (await cases.prompt(case_id, Action.CORRECT, spec, where, "n2")).ok
    prompts = [
        i for i in await queued(database) if i.case_id == case_id and i.payload["view"] == "prompt"
    ]
    follow_up, correct = (p.payload for p in prompts)
    assert follow_up["key"] == "ui.prompt_follow_up" and correct["key"] == "ui.prompt_correct"
    starts = follow_up["params"]["starts"]  # type: ignore[index]
    assert [s["title"] for s in starts] == ["Показать результат"]
    assert "starts" not in correct["params"]  # type: ignore[operator]


@pytest.mark.parametrize("locale", LOCALES)
def test_a_correcting_reply_says_so_in_both_languages(locale: str) -> None:
    texts = texts_for(DEFAULT_TEMPLATES_DIR, locale)
    said = texts.public_reply("Воду дадут в 18:00", corrects=True)
    lead, body = said.split("\n")
    assert body == "Воду дадут в 18:00" and lead.endswith(":")
    assert texts.public_reply("Воду дадут в 18:00") == "Воду дадут в 18:00"
    prompt = texts.t("ui.prompt_follow_up", case_id=7, version=1, starts=[])
    assert "7" in prompt and "\n" not in prompt  # one paragraph, nothing glued
    for key in ("action.follow_up", "action.correct", "draft_kind.correction"):
        assert texts.t(key)
