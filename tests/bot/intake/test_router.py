"""The learned department router: trained on a tiny corpus, saved and loaded, and asked by
intake only for mentions no rule claims."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.intake.bulk import BulkIntake
from bot.intake.intake import MentionIntake
from bot.intake.router import DEFAULT_ROUTER_PATH, DepartmentRouter, RouterError
from bot.intake.router_training import (
    Example,
    cross_validate,
    fit,
    read_corpus,
    reroutes,
    retrain,
    save,
)
from bot.intake.routing import RouteBasis, consult_router, route
from bot.messages.texts import texts_for
from bot.messages.views import CardView
from bot.model import Action, Sentiment
from bot.settings.playbook import Playbook, load_playbook
from bot.settings.routing_rules import LearnedRouting
from bot.sla.calendar import Deadlines
from bot.staff.directory import Directory
from handlers.telegram.render import TelegramRenderer
from store.db import Database
from tests.doubles.support import ROOT, make_config, make_mention

# Subjects the shipped routing rules have no keyword for, so only the router can place them.
CORPUS = {
    "transport": [
        "Самокаты брошены прямо посреди велодорожки",
        "Велодорожка разбита, на самокате не проехать",
        "Каршеринг оставляет машины на велодорожке",
        "Самокаты и велосипеды мешают пройти",
        "Велодорожку у набережной так и не доделали",
        "Прокат самокатов опять не работает",
    ],
    "housing": [
        "Домофон сломан вторую неделю",
        "Соседи сверху шумят каждую ночь, домофон не работает",
        "Домофон не открывает дверь жильцам",
        "Почтовые ящики сломаны, домофон тоже",
        "Соседи устроили склад на лестничной клетке",
        "Код домофона не подходит, соседи жалуются",
    ],
    "coordination": [
        "Спасибо за ответ на обращение",
        "Когда будет приём граждан у главы",
        "Прошу сообщить часы приёма",
        "Спасибо, вопрос решили",
        "Где узнать часы приёма главы",
        "Благодарю за быстрый ответ",
    ],
}


def write_corpus(path: Path) -> Path:
    lines = [
        json.dumps({"text": text, "department": department, "label": "negative"})
        for department, texts in CORPUS.items()
        for text in texts
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> DepartmentRouter:
    corpus = write_corpus(tmp_path_factory.mktemp("router") / "corpus.jsonl")
    return fit(read_corpus(corpus), c=100.0)


def test_the_router_learns_its_corpus(router: DepartmentRouter) -> None:
    assert router.departments == ("coordination", "housing", "transport")
    for department, texts in CORPUS.items():
        for text in texts:
            choice = router.route_text(text)
            assert choice.department == department, text
            assert 1 / 3 < choice.confidence <= 1
    unseen = router.route_text("На велодорожке опять самокаты")
    assert unseen.department == "transport"
    # The signals are the text's own n-grams, as staff read them: «самок», «велод».
    assert unseen.signals
    assert all(s.strip("«»").strip() in "на велодорожке опять самокаты" for s in unseen.signals)


def test_save_and_load_give_the_same_router(router: DepartmentRouter, tmp_path: Path) -> None:
    path = tmp_path / "models" / "router.npz"
    save(router, path)
    loaded = DepartmentRouter.load(path)
    assert loaded.departments == router.departments
    assert loaded.metadata["format"] == "otklik-router/1"
    for texts in CORPUS.values():
        for text in texts:
            before, after = router.route_text(text), loaded.route_text(text)
            assert (after.department, after.signals) == (before.department, before.signals)
            assert after.confidence == pytest.approx(before.confidence, abs=1e-6)


def test_training_is_deterministic(tmp_path: Path) -> None:
    corpus = read_corpus(write_corpus(tmp_path / "corpus.jsonl"))
    save(fit(corpus, c=100.0), tmp_path / "a.npz")
    save(fit(corpus, c=100.0), tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_cross_validation_by_author_batch_routes_the_author_left_out() -> None:
    # Two authors, each writing every subject: a router trained on one judges the other.
    examples = [
        Example(f"{text} ({author})", department, batch=author)
        for author in (1, 2)
        for department, texts in CORPUS.items()
        for text in texts
    ]
    cv = cross_validate(examples, lambda *_: None, "coordination", c_grid=(100.0,))
    assert set(cv.accuracy_by_c) == {100.0}
    # The subjects' words are shared by both authors: held out whole, a batch is still routed.
    assert cv.accuracy_by_c[100.0] > 0.8
    assert cv.routing_by_threshold[0.0] == cv.router_only


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "router.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(RouterError):
        DepartmentRouter.load(path)


def test_the_router_chooses_only_among_configured_departments(router: DepartmentRouter) -> None:
    housing_only = router.restricted_to({"housing", "education"})
    assert housing_only is not None and housing_only.departments == ("housing",)
    assert housing_only.route_text(CORPUS["transport"][0]).department == "housing"
    assert router.restricted_to({"education"}) is None


def test_the_shipped_router_loads_and_knows_the_default_departments() -> None:
    shipped = DepartmentRouter.load(DEFAULT_ROUTER_PATH)
    assert {"housing", "transport", "health", "education", "social", "coordination"} <= set(
        shipped.departments
    )
    assert shipped.route_text("Автобус 12 не пришёл, ждали на остановке час").department == (
        "transport"
    )


def test_reroutes_teach_the_router(router: DepartmentRouter) -> None:
    corpus = [Example(t, d) for d, ts in CORPUS.items() for t in ts]
    text = "Почтовые ящики в подвале залило"
    assert router.route_text(text).department == "housing"
    taught = retrain(corpus, [(text, "coordination")] * 3, c=100.0)
    assert taught.metadata["reroutes"] == 3
    assert taught.route_text(text).department == "coordination"


# --- intake: rules first, then the router -----------------------------------------------------


def playbook_with(min_confidence: float, overrule_confidence: float | None = None) -> Playbook:
    playbook = load_playbook(ROOT / "playbooks" / "default")
    learned = LearnedRouting(min_confidence=min_confidence, overrule_confidence=overrule_confidence)
    return playbook.model_copy(
        update={"routing": playbook.routing.model_copy(update={"learned": learned})}
    )


def intake_with(
    database: Database, tmp_path: Path, clock: FrozenClock, playbook: Playbook, router: Any
) -> tuple[MentionIntake, Directory]:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram"}))
    cases = CaseService(database.uow, clock, directory, config.tz)

    def plan(*_: Any) -> tuple[str, Deadlines]:
        now = clock.now()
        due = Deadlines(now + timedelta(hours=1), now + timedelta(hours=4), now + timedelta(1))
        return "standard", due

    restricted = router.restricted_to(config.department_ids)
    return MentionIntake(cases, playbook, clock, plan, router=restricted), directory


async def card_text(database: Database, case_id: int) -> str:
    async with database.uow() as uow:
        items = [await uow.outbox.get(n) for n in range(1, 20)]
    cards = [i for i in items if i is not None and i.case_id == case_id]
    assert cards and cards[0].payload["view"] == "card"
    card: CardView = cards[0].payload  # type: ignore[assignment]
    texts = texts_for(ROOT / "playbooks" / "templates", "ru")
    return TelegramRenderer(texts).render(card).text


async def test_a_mention_no_rule_claims_goes_where_the_router_is_sure(
    database: Database, tmp_path: Path, clock: FrozenClock, router: DepartmentRouter
) -> None:
    playbook = playbook_with(0.6)
    text = "Самокаты опять брошены на велодорожке"
    assert route(playbook, text, "vk").rule_id is None
    intake, _ = intake_with(database, tmp_path, clock, playbook, router)

    result = await intake.receive(make_mention("r1", clock.now(), text=text))

    case = result.case
    assert case is not None and case.id is not None
    assert case.department == "transport"
    assert case.route_confidence is not None and case.route_confidence >= 0.6
    card = await card_text(database, case.id)
    assert f"Транспорт (модель, {case.route_confidence:.2f})" in card


async def test_a_batch_is_routed_the_same_way(
    database: Database, tmp_path: Path, clock: FrozenClock, router: DepartmentRouter
) -> None:
    playbook = playbook_with(0.6)
    intake, directory = intake_with(database, tmp_path, clock, playbook, router)
    cases = CaseService(database.uow, clock, directory, make_config(tmp_path, database.url).tz)
    bulk = BulkIntake(database.uow, intake, cases, clock, playbook.routing.author_labels)
    batch = [
        make_mention("b1", clock.now(), text="Самокаты опять брошены на велодорожке"),
        make_mention("b2", clock.now(), text="Третий день нет отопления"),
    ]

    result = await bulk.receive_many(batch)

    learned, ruled = (r.case for r in result.results)
    assert learned is not None and learned.department == "transport"
    assert learned.route_confidence is not None and learned.route_confidence >= 0.6
    assert ruled is not None and ruled.department == "housing"
    assert ruled.route_confidence is None


async def test_a_rule_wins_over_the_router(
    database: Database, tmp_path: Path, clock: FrozenClock, router: DepartmentRouter
) -> None:
    playbook = playbook_with(0.0)
    # The router has learned "самокат" as transport; the heating rule claims the mention.
    text = "Самокаты на велодорожке, а в квартире нет отопления"
    intake, _ = intake_with(database, tmp_path, clock, playbook, router)

    decision, opening = intake.decide(make_mention("r2", clock.now(), text=text))

    assert decision.basis is RouteBasis.RULE and decision.rule_id == "housing-heating"
    assert opening is not None and opening.department == "housing"
    assert opening.route_confidence is None
    result = await intake.receive(make_mention("r2", clock.now(), text=text))
    assert result.case is not None and result.case.id is not None
    assert "модель" not in await card_text(database, result.case.id)


# The router has learned "самокат" as transport (about 0.96 sure here); the heating rule claims it.
CLAIMED_BY_A_RULE = "Самокаты на велодорожке, а в квартире нет отопления"


async def test_a_confident_router_overrules_a_rule(
    database: Database, tmp_path: Path, clock: FrozenClock, router: DepartmentRouter
) -> None:
    playbook = playbook_with(0.5, overrule_confidence=0.9)
    ruled = route(playbook, CLAIMED_BY_A_RULE, "vk")
    intake, _ = intake_with(database, tmp_path, clock, playbook, router)

    decision, opening = intake.decide(make_mention("o1", clock.now(), text=CLAIMED_BY_A_RULE))

    assert decision.basis is RouteBasis.LEARNED and decision.department == "transport"
    # The rule's priority, SLA policy and codes stay on the case.
    assert decision.rule_id == "housing-heating"
    assert (decision.priority, decision.sla_policy, decision.codes) == (
        ruled.priority,
        ruled.sla_policy,
        ruled.codes,
    )
    assert opening is not None and opening.department == "transport"
    assert opening.route_confidence is not None and opening.route_confidence >= 0.9
    result = await intake.receive(make_mention("o1", clock.now(), text=CLAIMED_BY_A_RULE))
    assert result.case is not None and result.case.id is not None
    card = await card_text(database, result.case.id)
    assert f"Транспорт (модель, {opening.route_confidence:.2f})" in card


async def test_below_the_overrule_confidence_the_rule_stays(
    database: Database, tmp_path: Path, clock: FrozenClock, router: DepartmentRouter
) -> None:
    intake, _ = intake_with(
        database, tmp_path, clock, playbook_with(0.0, overrule_confidence=0.99), router
    )

    decision, opening = intake.decide(make_mention("o2", clock.now(), text=CLAIMED_BY_A_RULE))

    assert decision.basis is RouteBasis.RULE and decision.department == "housing"
    assert decision.confidence is None
    assert opening is not None and opening.route_confidence is None


def test_without_the_setting_a_rule_is_never_overruled(router: DepartmentRouter) -> None:
    assert LearnedRouting().overrule_confidence is None
    playbook = playbook_with(0.0)  # overrule_confidence absent
    decision = route(playbook, CLAIMED_BY_A_RULE, "vk")

    consulted = consult_router(playbook, decision, CLAIMED_BY_A_RULE, router)

    assert consulted == decision


def test_an_overrule_needs_another_department(router: DepartmentRouter) -> None:
    playbook = playbook_with(0.0, overrule_confidence=0.0)
    text = "Домофон сломан, в квартире нет отопления"
    decision = route(playbook, text, "vk")
    assert decision.department == "housing"

    assert consult_router(playbook, decision, text, router) == decision


async def test_an_unsure_router_leaves_the_mention_to_coordination(
    database: Database, tmp_path: Path, clock: FrozenClock, router: DepartmentRouter
) -> None:
    playbook = playbook_with(0.99)
    intake, _ = intake_with(database, tmp_path, clock, playbook, router)
    mention = make_mention("r3", clock.now(), text="Ничего не понятно, что происходит")

    decision, opening = intake.decide(mention)

    assert decision.basis is RouteBasis.DEFAULT and decision.department == "coordination"
    assert decision.confidence is not None and decision.confidence < 0.99
    assert opening is not None and opening.route_confidence is None


async def test_a_mention_that_needs_no_case_never_asks_the_router(
    database: Database, tmp_path: Path, clock: FrozenClock, router: DepartmentRouter
) -> None:
    intake, _ = intake_with(database, tmp_path, clock, playbook_with(0.0), router)
    text = CORPUS["transport"][0]
    positive = make_mention("r4", clock.now(), text=text, sentiment=Sentiment.POSITIVE)
    decision, opening = intake.decide(positive)
    assert opening is None and decision.basis is RouteBasis.DEFAULT
    assert decision.confidence is None


async def test_reroutes_are_read_back_for_retraining_and_clear_the_confidence(
    database: Database, tmp_path: Path, clock: FrozenClock, router: DepartmentRouter
) -> None:
    intake, directory = intake_with(database, tmp_path, clock, playbook_with(0.0), router)
    text = "Самокаты опять брошены у домофона"
    opened = await intake.receive(make_mention("r5", clock.now(), text=text))
    assert opened.case is not None and opened.case.id is not None
    assert opened.case.route_confidence is not None
    target = "coordination" if opened.case.department != "coordination" else "housing"
    duty = directory.by_staff_id("duty")
    assert duty is not None
    cases = CaseService(database.uow, clock, directory, make_config(tmp_path, database.url).tz)

    moved = await cases.act(opened.case.id, ActionRequest(Action.REROUTE, department=target), duty)

    assert moved.ok and moved.case is not None and moved.case.route_confidence is None
    assert await reroutes(database.uow) == [(text, target)]
    assert await reroutes(database.uow, since=clock.now() + timedelta(days=1)) == []


def test_a_card_queued_before_the_router_still_renders() -> None:
    texts = texts_for(ROOT / "playbooks" / "templates", "en")
    old: dict[str, Any] = {
        "view": "card",
        "case": {
            "id": 7,
            "version": 1,
            "state": "new",
            "priority": "normal",
            "department": "housing",
            "escalation_level": 0,
            "drill": False,
            "mention_count": 1,
        },
        "department_name": "Housing",
        "source": "vk",
        "deadline": None,
        "assignee_name": None,
        "author": {"name": "Ann", "labels": [], "negative_count": 0, "total_mentions": 1},
        "text": "No hot water",
        "url": None,
        "draft": None,
        "moved_to": None,
        "sla": None,
        "actions": [],
        "menu": None,
        "options": [],
    }
    rendered = TelegramRenderer(texts).render(old)  # type: ignore[arg-type]
    assert "🏢 Housing · vk" in rendered.text
    learned = TelegramRenderer(texts).render({**old, "route_confidence": 0.8234})  # type: ignore[arg-type]
    assert "🏢 Housing (model, 0.82) · vk" in learned.text
