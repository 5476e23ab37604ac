"""A batch that mixes everything a live batch holds, stored through the bulk statements of each
backend (on PostgreSQL: one statement per table, ids from the insert): new and known authors,
mentions joining stored cases by author and by similar text, a new case, duplicates of stored
mentions and within the batch. What is stored must be what the single path would store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.intake.bulk import BulkIntake
from bot.intake.intake import MentionIntake
from bot.model import Identity, Mention, Sentiment
from bot.settings.playbook import load_playbook
from bot.sla.calendar import Deadlines
from bot.staff.directory import Directory
from store.db import Database
from store.models import MentionBandRow
from tests.doubles.support import make_config, make_mention

HEATING = "Третий день нет отопления, батареи ледяные, управляющая компания молчит"
HEATING_AGAIN = "Отопление так и не дали, в квартире холодно, батареи ледяные"
BUS = "Автобус 42 опять не пришёл, стоим на остановке на улице Мицкевича уже час"
BUS_ALIKE = "42-й автобус так и не пришел на остановку Мицкевича, стоим уже час"
PIPE = "На улице Мицкевича прорвало трубу, вода течёт по тротуару, никто не чинит"
CALM = "Спасибо за новый сквер у дома, очень красиво"


def said(
    external_id: str,
    clock: FrozenClock,
    text: str,
    author: str,
    sentiment: Sentiment = Sentiment.NEGATIVE,
) -> Mention:
    return make_mention(external_id, clock.now(), text=text, author=author, sentiment=sentiment)


def bulk_intake(tmp_path: Path, database: Database, clock: FrozenClock) -> BulkIntake:
    config = make_config(tmp_path, database.url)
    playbook = load_playbook(config.playbooks.path)
    directory = Directory(config, frozenset({"telegram", "matrix"}))
    cases = CaseService(database.uow, clock, directory, config.tz, policy=playbook.routing)

    def plan(*_: object) -> tuple[str, Deadlines]:
        now = clock.now()
        return "standard", Deadlines(now + timedelta(hours=1), now + timedelta(hours=4), now)

    intake = MentionIntake(cases, playbook, clock, plan)
    return BulkIntake(database.uow, intake, cases, clock, playbook.routing.author_labels)


async def test_a_mixed_batch_stores_what_the_single_path_would(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    bulk = bulk_intake(tmp_path, database, clock)
    first = await bulk.receive_many(
        [
            said("a1", clock, HEATING, "anna"),
            said("d1", clock, BUS, "dasha"),
            said("b1", clock, CALM, "boris", Sentiment.POSITIVE),
        ]
    )
    heating, bus, calm = first.results
    assert heating.case is not None and bus.case is not None and calm.case is None
    heating_id, bus_id = heating.case.id, bus.case.id
    assert heating_id is not None and bus_id is not None
    clock.advance(timedelta(minutes=5))

    batch = [
        said("a2", clock, HEATING_AGAIN, "anna"),  # known author: joins her open case
        said("b2", clock, CALM, "boris", Sentiment.NEUTRAL),  # known author, no case
        said("e1", clock, BUS_ALIKE, "egor"),  # new author: joins by similar text
        said("a1", clock, HEATING, "anna"),  # stored already
        said("f1", clock, CALM, "fedor", Sentiment.NEUTRAL),  # new author, no case
        said("f1", clock, CALM, "fedor", Sentiment.NEUTRAL),  # twice in the batch
        said("g1", clock, PIPE, "galya"),  # new author, a case of its own
    ]
    result = await bulk.receive_many(batch)
    joined, counted, alike, _, fresh, _, pipe = result.results

    assert [r.duplicate for r in result.results] == [False, False, False, True, False, True, False]
    assert (result.stored, result.duplicates) == (5, 2)
    assert joined.case is not None and joined.case.id == heating_id
    assert alike.case is not None and alike.case.id == bus_id
    assert pipe.case is not None and pipe.case.id is not None
    pipe_id = pipe.case.id
    assert pipe_id not in (heating_id, bus_id)
    assert counted.case is None and fresh.case is None

    stored = {r.mention.external_id: r.mention for r in result.results if r.mention is not None}
    assert len({m.id for m in stored.values()}) == 5
    async with database.reader() as uow:
        for external_id, mention in stored.items():
            row = await uow.mentions.get_by_external("vk", external_id)
            assert row is not None and row.id == mention.id, external_id
            assert row.author_id == mention.author_id and row.text == mention.text
        assert (await uow.mentions.get_by_external("vk", "a1")) is not None
        case_of = {
            external_id: (await uow.mentions.get_by_external("vk", external_id))
            for external_id in ("a2", "e1", "g1", "b2", "f1")
        }
        assert {k: m.case_id for k, m in case_of.items() if m is not None} == {
            "a2": heating_id,
            "e1": bus_id,
            "g1": pipe_id,
            "b2": None,
            "f1": None,
        }
        cases = await uow.cases.get_many([heating_id, bus_id, pipe_id])
        anna = await uow.authors.find_by_identity(Identity("vk", "anna", ""))
        boris = await uow.authors.find_by_identity(Identity("vk", "boris", ""))
        fedor = await uow.authors.find_by_identity(Identity("vk", "fedor", ""))
        egor = await uow.authors.find_by_identity(Identity("vk", "egor", ""))

    assert (cases[heating_id].mention_count, cases[heating_id].people_count) == (2, 1)
    assert (cases[bus_id].mention_count, cases[bus_id].similar_count) == (2, 1)
    assert cases[bus_id].people_count == 2
    assert cases[pipe_id].mention_count == 1
    # One card per person, counted once per stored mention (duplicates count nothing).
    assert joined.mention is not None and alike.mention is not None
    assert anna is not None and anna.id == joined.mention.author_id
    assert (anna.negative_count, anna.neutral_count, anna.positive_count) == (2, 0, 0)
    assert boris is not None and (boris.neutral_count, boris.positive_count) == (1, 1)
    assert fedor is not None and (fedor.negative_count, fedor.neutral_count) == (0, 1)
    assert egor is not None and egor.id == alike.mention.author_id

    # Grouping's text bands were stored for the mentions that opened or joined cases.
    async with database.engine.connect() as conn:
        banded = set(
            await conn.scalars(
                select(MentionBandRow.mention_id).group_by(MentionBandRow.mention_id)
            )
        )
        count = await conn.scalar(select(func.count()).select_from(MentionBandRow))
    opened_or_joined = {stored[k].id for k in ("a2", "e1", "g1")}
    assert opened_or_joined <= banded and stored["b2"].id not in banded
    assert count and count > len(banded)
