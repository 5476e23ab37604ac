"""Approval tiers and reject with a reason in Telegram: the real dispatcher polling the test
server over HTTP. A high-priority case's draft needs the department's approver, then a press
secretary (playbooks/default/approval.yaml), four eyes at each step; a rejection asks why and
the author reads it under the draft, as /case does."""

from __future__ import annotations

from pathlib import Path

from bot.model import Action, CaseState, DraftStatus, EventKind, Priority
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import World, telegram_world

HIGH = "Авария на теплотрассе, дом без отопления третий день"


def _drafts(world: World, chat: int, version: int = 1) -> list[StoredMessage]:
    return [
        m
        for m in world.server.messages(chat)
        if m.bot_id is not None and (m.text or "").startswith(f"📝 Черновик v{version} ")
    ]


async def test_a_high_priority_draft_goes_through_two_tiers_with_four_eyes_at_each(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case(HIGH)
        case = await world.case(case_id)
        assert (case.department, case.priority) == ("housing", Priority.HIGH)
        card = await world.card(case_id)

        # The department's approver writes the answer: they may not approve it themselves.
        world.reply("appr", card, "Аварийная бригада на месте, тепло дадут до 18:00")
        await world.idle()
        (draft,) = _drafts(world, world.housing)
        assert draft.reply_to_message_id == card.message_id
        assert "Согласование: ⏳ отдел → пресс-секретарь" in (draft.text or "")
        assert not _drafts(world, world.coordination)  # not the press secretary's turn yet

        answer = await world.press("appr", draft, "Одобрить")
        assert answer["show_alert"] and "второй человек" in str(answer["text"])
        # Rights per tier: a press secretary cannot approve the department's step.
        answer = await world.press("press2", draft, "Одобрить")
        assert answer["show_alert"] and "на шаге 1" in str(answer["text"])
        assert (await world.case(case_id)).state is CaseState.AWAITING_APPROVAL

        # Step 1: housing's approver (also a press secretary) approves.
        answer = await world.press("press", draft, "Одобрить")
        assert not answer.get("show_alert")
        await world.idle()
        case = await world.case(case_id)
        assert case.state is CaseState.AWAITING_APPROVAL
        assert [a.reviewer for a in case.latest_draft.approvals] == ["press"]
        draft = world.server.message(draft.chat_id, draft.message_id)
        assert "✅ отдел (Зоя Кравец) → ⏳ пресс-секретарь" in (draft.text or "")

        # Step 2 is the press secretaries': the draft is posted in their chat, with buttons.
        (asked,) = _drafts(world, world.coordination)
        assert "⏳ пресс-секретарь" in (asked.text or "") and asked.reply_markup
        answer = await world.press("press", asked, "Одобрить")  # not twice, not one person
        assert answer["show_alert"] and "на другом шаге" in str(answer["text"])
        answer = await world.press("appr", asked, "Одобрить")  # the author, in any chat
        assert answer["show_alert"] and "второй человек" in str(answer["text"])
        assert (await world.case(case_id)).state is CaseState.AWAITING_APPROVAL

        await world.press("press2", asked, "Одобрить")
        await world.idle()
        case = await world.case(case_id)
        assert case.state is CaseState.APPROVED
        assert [a.reviewer for a in case.latest_draft.approvals] == ["press", "press2"]
        for message in (asked, draft):
            shown = world.server.message(message.chat_id, message.message_id).text or ""
            assert "✅ отдел (Зоя Кравец) → ✅ пресс-секретарь (Илья Соколов)" in shown
        card = await world.card(case_id)
        assert "✅ пресс-секретарь (Илья Соколов)" in (card.text or "")

        await world.press("appr", card, "Опубликовано")
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.PUBLISHED

        thread = await world.app.cases.thread(case_id)
        assert thread is not None
        approvals = [e.payload for e in thread.events if e.kind == Action.APPROVE]
        assert [(p["tier"], p["tier_name"]) for p in approvals] == [
            (1, "department"),
            (2, "press_secretary"),
        ]
        # The press at a tier without its role is audited as a missing right.
        denied = [(e.actor, e.payload) for e in thread.events if e.kind == EventKind.DENIED]
        assert [(actor, p["reason"]) for actor, p in denied] == [("press2", "wrong_tier")]
        # /case lists each step with whose it was.
        ask = world.say("appr", world.housing, f"/case {case_id}", thread=world.topic)
        history = (await world.answer_to(ask)).text or ""
        assert "Зоя Кравец: одобрил(а) — отдел" in history
        assert "Илья Соколов: одобрил(а) — пресс-секретарь" in history


async def test_reject_asks_for_a_reason_that_the_author_reads(tmp_path: Path) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case()
        card = await world.card(case_id)
        world.reply("spec", card, "Напишите нам в личные сообщения")
        await world.idle()
        (draft,) = _drafts(world, world.housing)

        await world.press("appr", draft, "Отклонить")
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.AWAITING_APPROVAL  # asked first
        prompt = next(
            m
            for m in reversed(world.server.messages(world.housing))
            if "почему отклоняем" in (m.text or "")
        )
        assert prompt.reply_to_message_id == draft.message_id
        world.reply("appr", prompt, "Отвечаем по существу, а не в личке")
        await world.idle()

        case = await world.case(case_id)
        assert case.state is CaseState.TAKEN and case.assignee == "spec"
        assert case.latest_draft.status is DraftStatus.REJECTED
        assert case.latest_draft.note == "Отвечаем по существу, а не в личке"
        shown = world.server.message(draft.chat_id, draft.message_id)
        assert "Отклонён — Вера Петрова: Отвечаем по существу, а не в личке" in (shown.text or "")
        assert not shown.reply_markup  # reviewed: no buttons left

        ask = world.say("spec", world.housing, f"/case {case_id}", thread=world.topic)
        history = (await world.answer_to(ask)).text or ""
        assert "Отвечаем по существу, а не в личке" in history
