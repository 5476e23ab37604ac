"""The sandbox offers follow-ups and corrections as Telegram does: «Дополнить ответ» on a
published card asks for the text, the approver approves it, «Опубликовано» marks it public and
the card says what is public while «Исправить ответ» writes a correction."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.clock import FrozenClock
from bot.model import CaseState, DraftKind
from tests.doubles.sandbox import HEATING, SandboxClient, labels, running_example, text_of


async def test_a_follow_up_and_a_correction_in_the_sandbox(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with running_example(tmp_path, clock) as (app, base), aiohttp.ClientSession() as http:
        sandbox = SandboxClient(http, base)
        case_id = (await sandbox.feed(HEATING))["case"]

        async def card_with(button: str) -> dict[str, object]:
            return await sandbox.wait_for(
                "housing",
                lambda m: m.get("case_id") == case_id and button in labels(m),
                f"the card with {button!r}",
            )

        async def write(button: str, prompted: str, text: str, title: str) -> None:
            await sandbox.press("housing", "ivanova", await card_with(button), button)
            prompt = await sandbox.wait_for(
                "housing", lambda m: m.get("prompt") is True and prompted in text_of(m)
            )
            said = await sandbox.say("housing", "ivanova", text, reply_to=prompt["id"])
            assert said["handled"] is True
            draft = await sandbox.wait_for(
                "housing", lambda m: m.get("kind") == "draft" and title in text_of(m)
            )
            assert (await sandbox.press("housing", "ivanova", draft, "Одобрить"))["alert"]
            assert not (await sandbox.press("housing", "petrov", draft, "Одобрить"))["alert"]
            await sandbox.press(
                "housing", "ivanova", await card_with("Опубликовано"), "Опубликовано"
            )

        card = await sandbox.card("housing", case_id)
        await sandbox.press("housing", "ivanova", card, "Взять")
        await sandbox.card("housing", case_id, "Анна Иванова")
        await write("Черновик", "текстом ответа", "Бригада выехала.", "Черновик v1")
        card = await card_with("Дополнить ответ")
        assert "Исправить ответ" in labels(card)
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.PUBLISHED

        await write("Дополнить ответ", "текстом дополнения", "Тепло дали в 17:40.", "Дополнение v2")
        # While the correction is written, the card shows what is public.
        await sandbox.press(
            "housing", "ivanova", await card_with("Исправить ответ"), "Исправить ответ"
        )
        prompt = await sandbox.wait_for(
            "housing", lambda m: m.get("prompt") is True and "исправленным" in text_of(m)
        )
        await sandbox.say("housing", "ivanova", "Тепло дали в 17:45.", reply_to=prompt["id"])
        card = await sandbox.card("housing", case_id, "Исправление v3")
        assert "Опубликовано (v2)" in text_of(card) and "17:40" in text_of(card)
        draft = await sandbox.wait_for(
            "housing", lambda m: m.get("kind") == "draft" and "Исправление v3" in text_of(m)
        )
        await sandbox.press("housing", "petrov", draft, "Одобрить")
        await sandbox.press("housing", "ivanova", await card_with("Опубликовано"), "Опубликовано")
        await card_with("Исправить ответ")
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.PUBLISHED
        assert case.published_draft is not None
        assert (case.published_draft.kind, case.published_draft.text) == (
            DraftKind.CORRECTION,
            "Тепло дали в 17:45.",
        )
        assert [d.kind for d in case.drafts] == [
            DraftKind.ANSWER,
            DraftKind.FOLLOW_UP,
            DraftKind.CORRECTION,
        ]
