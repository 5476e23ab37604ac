"""Similar mentions from many people join one case, through the store, on both backends."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.chat.answers import Answers
from bot.chat.inbound import Answer, Command, Inbound
from bot.clock import FrozenClock
from bot.intake.bulk import BulkIntake
from bot.intake.intake import MentionIntake
from bot.messages.outbox import Destination, OutboxOp
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.model import Action, EventKind
from bot.settings.playbook import load_playbook
from bot.sla.calendar import Deadlines
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from store.db import Database
from store.models import MentionBandRow
from tests.doubles.support import make_config, make_mention

TRANSPORT = CaseOpening("transport")
WORDINGS = (
    "Автобус 42 опять не пришёл, стоим на остановке на улице Мицкевича уже час",
    "42-й автобус так и не пришел на остановку Мицкевича, стоим уже час",
    "Автобус 42 не пришёл, на остановке улицы Мицкевича ждём целый час",
)
BANDS = 12  # MinHash bands of a text (bot/cases/similarity.py)
ROUTE_BANDS = BANDS + 1  # and one for the route number the wordings name
OTHER = "На улице Мицкевича прорвало трубу, вода течёт по тротуару, никто не чинит"


def service(tmp_path: Path, database: Database, clock: FrozenClock) -> CaseService:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram", "matrix"}))
    # The shipped playbook's grouping: similar texts join within 6 h.
    routing = load_playbook(config.playbooks.path).routing
    assert routing.grouping.similar_within == timedelta(hours=6)
    return CaseService(database.uow, clock, directory, config.tz, policy=routing)


async def bands(database: Database) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(MentionBandRow)) or 0)


async def test_thirty_similar_complaints_from_thirty_people_are_one_case(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases = service(tmp_path, database, clock)
    opened: set[int] = set()
    for n in range(30):
        text = WORDINGS[n % len(WORDINGS)] + "!" * (n % 4)
        got = await cases.intake(make_mention(f"bus-{n}", clock.now(), text=text), TRANSPORT)
        assert got.case is not None and got.case.id is not None
        opened.add(got.case.id)
        clock.advance(timedelta(minutes=1))
    assert len(opened) == 1, opened
    (case_id,) = opened
    async with database.reader() as uow:
        (case,) = (await uow.cases.get_many([case_id])).values()
        authors = {m.author_id for m in await uow.mentions.for_case(case_id)}
    assert case.mention_count == 30 and len(authors) == 30
    assert (case.similar_count, case.people_count) == (29, 30)

    # No new card: the one card is edited, and it shows the count, the people, the spread.
    async with database.reader() as uow:
        items = [i for n in range(1, 400) if (i := await uow.outbox.get(n)) is not None]
    assert {i.op for i in items if i.case_id != case_id} == set()
    posts = [i for i in items if i.op is OutboxOp.POST]
    assert len(posts) == 1  # the department's one chat, once
    latest = items[-1].payload
    assert latest["view"] == "card"
    for locale, line in (("en", "+29 similar from 29 people"), ("ru", "Ещё 29 похожих от 29 чел.")):
        card = texts_for(DEFAULT_TEMPLATES_DIR, locale).render("card.html.j2", **latest)
        assert line in card, card
        assert WORDINGS[0].split(",")[0] in card  # the first mention's text represents them
        assert "20.11 16:30 — 20.11 16:59 · vk" in card, card  # first and last, sources

    # The same street with another problem opens its own case; after the window, so does
    # the same complaint, and the old bands are pruned.
    other = await cases.intake(make_mention("pipe", clock.now(), text=OTHER), TRANSPORT)
    assert other.case is not None and other.case.id != case_id
    assert await bands(database) == 30 * ROUTE_BANDS + BANDS
    clock.advance(timedelta(hours=7))
    late = await cases.intake(make_mention("late", clock.now(), text=WORDINGS[0]), TRANSPORT)
    assert late.case is not None and late.case.id not in (case_id, other.case.id)
    assert await bands(database) == ROUTE_BANDS


async def test_candidates_survive_a_restart_and_departments_stay_apart(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    first = await service(tmp_path, database, clock).intake(
        make_mention("a", clock.now(), text=WORDINGS[0]), TRANSPORT
    )
    # A new service (a restart) finds the stored case by the bands alone.
    again = service(tmp_path, database, clock)
    joined = await again.intake(make_mention("b", clock.now(), text=WORDINGS[1]), TRANSPORT)
    apart = await again.intake(
        make_mention("c", clock.now(), text=WORDINGS[1]), CaseOpening("housing")
    )
    assert first.case is not None and joined.case is not None and apart.case is not None
    assert joined.case.id == first.case.id and joined.case.mention_count == 2
    assert apart.case.id != first.case.id


async def test_erasure_removes_the_band_rows(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases = service(tmp_path, database, clock)
    got = await cases.intake(make_mention("a", clock.now(), text=WORDINGS[0]), TRANSPORT)
    assert got.mention is not None and got.mention.author_id is not None
    assert await bands(database) == ROUTE_BANDS
    async with database.uow() as uow:
        plan = await uow.erasure.plan_author(got.mention.author_id)
        await uow.erasure.apply(plan)
        await uow.commit()
    assert await bands(database) == 0


async def test_a_batch_groups_its_own_similar_mentions_and_leaves_others_apart(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    config = make_config(tmp_path, database.url)
    playbook = load_playbook(config.playbooks.path)
    cases = service(tmp_path, database, clock)

    def plan(*_: object) -> tuple[str, Deadlines]:
        now = clock.now()
        return "standard", Deadlines(now + timedelta(hours=1), now + timedelta(hours=4), now)

    intake = MentionIntake(cases, playbook, clock, plan)
    bulk = BulkIntake(database.uow, intake, cases, clock, playbook.routing.author_labels)
    storm = [make_mention(f"s{n}", clock.now(), text=WORDINGS[n % 3]) for n in range(40)]
    other = [make_mention("pipe", clock.now(), text=OTHER)]
    result = await bulk.receive_many([*storm[:20], *other, *storm[20:]])

    ids = {r.case.id for r in result.results if r.case is not None}
    assert len(ids) == 2
    storm_ids = {r.case.id for r in result.results if r.case and r.case.mention_count == 40}
    assert len(storm_ids) == 1
    (storm_id,) = storm_ids
    async with database.reader() as uow:
        (case,) = (await uow.cases.get_many([storm_id])).values()
    assert case.department == "transport"
    assert (case.mention_count, case.similar_count, case.people_count) == (40, 39, 40)

    # The next batch joins the stored case through the bands.
    more = await bulk.receive_many([make_mention("s99", clock.now(), text=WORDINGS[1])])
    (joined,) = more.results
    assert joined.case is not None and joined.case.id == storm_id
    assert joined.case.mention_count == 41


# Two wordings of one event that share too little to join each other, and one that is similar
# to both: it joins the case more people already wrote to, not the newer one.
ONE_WAY = "Автобус 42 опять не пришёл, стоим на остановке на улице Мицкевича уже час"
OTHER_WAY = (
    "Водитель сказал, что сломался, рейс отменили без предупреждения, Мицкевича, маршрутка 42"
)
BRIDGE = "Автобус 42 не пришёл на остановку, водитель сказал что сломался, рейс отменили, Мицкевича"


async def test_a_mention_similar_to_several_cases_joins_the_largest(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases = service(tmp_path, database, clock)

    async def case_of(key: str, text: str) -> int:
        got = await cases.intake(make_mention(key, clock.now(), text=text), TRANSPORT)
        assert got.case is not None and got.case.id is not None
        clock.advance(timedelta(minutes=1))
        return got.case.id

    larger = {await case_of(f"one-{n}", ONE_WAY + "!" * n) for n in range(3)}
    assert len(larger) == 1
    newer = await case_of("other", OTHER_WAY)
    assert newer not in larger
    assert await case_of("bridge", BRIDGE) in larger

    # The same within one batch: the batch's larger case, though opened first.
    config = make_config(tmp_path, database.url)
    playbook = load_playbook(config.playbooks.path)

    def plan(*_: object) -> tuple[str, Deadlines]:
        now = clock.now()
        return "standard", Deadlines(now + timedelta(hours=1), now + timedelta(hours=4), now)

    intake = MentionIntake(cases, playbook, clock, plan)
    bulk = BulkIntake(database.uow, intake, cases, clock, playbook.routing.author_labels)
    clock.advance(timedelta(hours=7))  # past the window: the stored cases are not candidates
    texts = [ONE_WAY, ONE_WAY + "!", ONE_WAY + "!!", OTHER_WAY, BRIDGE]
    batch = [make_mention(f"b{n}", clock.now(), text=t) for n, t in enumerate(texts)]
    placed = [r.case.id for r in (await bulk.receive_many(batch)).results if r.case]
    assert len(set(placed)) == 2 and placed[4] == placed[0] != placed[3]


async def test_a_wrongly_joined_mention_is_split_off_by_department_staff(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    config = make_config(tmp_path, database.url)
    cases = service(tmp_path, database, clock)
    directory = Directory(config, frozenset({"telegram", "matrix"}), clock)
    texts = texts_for(config.playbooks.templates, config.locale)
    inbound = Inbound(cases, Answers(cases, directory, texts), directory, texts)
    got = [
        await cases.intake(make_mention(f"m{n}", clock.now(), text=WORDINGS[n]), TRANSPORT)
        for n in range(3)
    ]
    case_ids = {g.case.id for g in got if g.case}
    assert len(case_ids) == 1
    (case_id,) = case_ids
    wrong = got[2].mention
    assert wrong is not None and wrong.id is not None
    where = Destination("telegram", "-100222")
    tspec, spec = directory.by_staff_id("tspec"), directory.by_staff_id("spec")
    assert tspec is not None and spec is not None

    async def say(actor: Actor, name: str, args: str, key: str) -> dict[str, object]:
        assert await inbound.command(Command(where, actor, name, args, Answer(key)))
        async with database.reader() as uow:
            items = [await uow.outbox.get(n) for n in range(1, 80)]
        (answer,) = [i for i in items if i and i.idempotency_key.endswith(key)]
        return answer.payload

    # /case lists the joined mentions, each with its /split.
    page = await say(tspec, "case", str(case_id), "c1")
    shown = texts.render(str(page["template"]), **page["context"])  # type: ignore[arg-type]
    assert f"/split {wrong.id}" in shown
    first = got[0].mention
    assert first is not None and f"/split {first.id}" not in shown

    # Another department's specialist may not; the refusal is audited on the case.
    refused = await say(spec, "split", str(wrong.id), "s1")
    assert refused["key"] == "error.no_right"
    assert (await say(tspec, "split", str(first.id), "s2"))["key"] == "error.split_first"
    assert (await say(tspec, "split", "999999", "s3"))["key"] == "error.unknown_mention"

    done = await say(tspec, "split", str(wrong.id), "s4")
    assert done["key"] == "ui.split_done"
    async with database.reader() as uow:
        old = await uow.cases.get(case_id)
        moved = await uow.mentions.get(wrong.id)
        assert moved is not None and moved.case_id is not None
        new = await uow.cases.get(moved.case_id)
        events = await uow.events.for_case(case_id)
        new_events = await uow.events.for_case(moved.case_id)
        items = [i for n in range(1, 80) if (i := await uow.outbox.get(n)) is not None]
    assert old is not None and new is not None and new.id != case_id
    assert (old.mention_count, old.similar_count, old.people_count) == (2, 1, 2)
    assert (new.mention_count, new.department, new.state.value) == (1, "transport", "new")
    denied = [e for e in events if e.kind == EventKind.DENIED]
    assert denied and denied[-1].actor == "spec" and denied[-1].payload["action"] == "split"
    (split,) = [e for e in events if e.kind == EventKind.MENTION_SPLIT]
    assert split.actor == "tspec" and split.payload == {"mention_id": wrong.id, "to_case": new.id}
    (created,) = new_events
    assert created.kind == EventKind.CREATED and created.payload["split_from"] == case_id
    # The new case got its card.
    assert [i.op for i in items if i.case_id == new.id and i.payload.get("view") == "card"] == [
        OutboxOp.POST
    ]


async def test_a_rerouted_case_gathers_similar_mentions_in_its_new_department(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases = service(tmp_path, database, clock)
    directory = Directory(make_config(tmp_path, database.url), frozenset({"telegram"}))
    first = await cases.intake(
        make_mention("a", clock.now(), text=WORDINGS[0]), CaseOpening("housing")
    )
    assert first.case is not None and first.case.id is not None
    spec = directory.by_staff_id("spec")
    assert spec is not None
    moved = await cases.act(
        first.case.id, ActionRequest(Action.REROUTE, department="transport"), spec
    )
    assert moved.ok
    # Its similar mentions are now looked for in transport, and no longer in housing.
    there = await cases.intake(make_mention("b", clock.now(), text=WORDINGS[1]), TRANSPORT)
    here = await cases.intake(
        make_mention("c", clock.now(), text=WORDINGS[2]), CaseOpening("housing")
    )
    assert there.case is not None and here.case is not None
    assert there.case.id == first.case.id and there.case.mention_count == 2
    assert here.case.id != first.case.id
