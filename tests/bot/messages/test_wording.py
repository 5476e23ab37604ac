"""Words a press officer reads: every message, reply template and page template, rendered in
both locales with sample values built from the example config, shows no department, staff or
code id, no English unit in Russian and no «обращение» where no formal appeal (59-ФЗ) is meant.

Keys, parameters and page templates are enumerated from the files: a new message or parameter
without a sample here fails loudly, so every future text is read too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2 import meta

from bot.cases.lifecycle import DomainError, NoRight, NotAssignee
from bot.cases.outcomes import UnknownCase
from bot.cases.prompts import BACK
from bot.chat.answers import Answers, case_number, refusal_view
from bot.crisis.service import CHECKLIST_PRESS
from bot.messages.texts import (
    DEFAULT_TEMPLATES_DIR,
    LOCALES,
    MESSAGES_FILE,
    Texts,
    plural_form,
    spell_duration,
    texts_for,
)
from bot.model import Action, AuthorLabel, CaseState, DraftStatus, Priority
from bot.settings.config import load_config
from bot.settings.crisis_rules import ThresholdScope
from bot.settings.playbook import Playbook, load_playbook
from bot.settings.reply_templates import TemplateUse
from bot.staff.directory import Directory

REPO = Path(__file__).resolve().parents[3]
CONFIG = load_config(REPO / "config.example.yaml")
PLAYBOOK = load_playbook(CONFIG.playbooks.path)
TEXTS = {locale: texts_for(DEFAULT_TEMPLATES_DIR, locale) for locale in LOCALES}

# A department, a colleague and a code from the example config and playbook.
DEPT = "housing"
STAFF = "petrov"
CODE = "heating"


def dept_name(dept: str = DEPT) -> str:
    found = CONFIG.department(dept)
    assert found is not None
    return found.name


def staff_name(staff: str = STAFF) -> str:
    member = CONFIG.staff_member(staff)
    assert member is not None
    return member.name


def playbook_codes(playbook: Playbook) -> set[str]:
    """Every code the playbook puts on a case or watches."""
    codes = {code for rule in playbook.routing.rules for code in rule.codes}
    codes |= {t.key for t in playbook.crisis.thresholds if t.scope is ThresholdScope.CODE and t.key}
    return codes


def id_pattern(ids: set[str]) -> re.Pattern[str]:
    """Any of the ids as a word of its own ("heating-outage", a scenario one types after
    /drill start, is another id)."""
    words = "|".join(sorted(map(re.escape, ids), key=len, reverse=True))
    return re.compile(rf"(?<![\w.@:/-])(?:{words})(?![\w-])")


ALL_IDS = {d.id for d in CONFIG.departments} | {s.id for s in CONFIG.staff}
ALL_IDS |= playbook_codes(PLAYBOOK) | set(PLAYBOOK.routing.code_titles)
IDS = {
    "ru": id_pattern(ALL_IDS),
    # English words such as "housing" or "transport" are ids and plain English: in English
    # text only the ids no sentence uses (staff logins, snake_case codes) are leaks.
    "en": id_pattern({s.id for s in CONFIG.staff} | {i for i in ALL_IDS if "_" in i}),
}
ENGLISH_UNITS = re.compile(r"\b\d+\s?(?:h|m|min|d|s|sec)\b|\b(?:hours?|minutes?|days?)\b")
# 59-ФЗ's «обращение» is a formal appeal with a 30-day answer duty: comments are «сообщения».
APPEAL = re.compile(r"обращени", re.IGNORECASE)


def problems_in(text: str, locale: str) -> list[str]:
    found = [f"id {m.group(0)!r}" for m in IDS[locale].finditer(text)]
    if locale == "ru":
        found += [f"English unit {m.group(0)!r}" for m in ENGLISH_UNITS.finditer(text)]
        found += [f"«{m.group(0)}»: a formal appeal?" for m in APPEAL.finditer(text)]
    return found


# --- short messages (messages.yaml) ----------------------------------------------------------


def message_sources(locale: str) -> dict[str, str]:
    def flatten(node: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
        for key, value in node.items():
            if isinstance(value, Mapping):
                yield from flatten(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    data = yaml.safe_load((DEFAULT_TEMPLATES_DIR / locale / MESSAGES_FILE).read_text("utf-8"))
    return dict(flatten(data))


SOURCES = {locale: message_sources(locale) for locale in LOCALES}


# One sample per parameter a message may take: what the code passes (names where it passes
# names, ids where it passes ids).
SAMPLES: dict[str, Any] = {
    "action": Action.APPROVE.value,
    "actor_name": staff_name(),
    "actual": 5,
    "address": "http://127.0.0.1:8080/sandbox",
    "assignee_name": staff_name(),
    "at": "07.12 09:45",
    "contact": "petr@example.ru",
    "author_id": 17,
    "case_id": 42,
    # /ids and the start-up check of chats: ids are what the administrator copies here
    "chat": -1001234567890,
    "channel": "telegram",
    "choices": "1. ЖКХ\n2. Транспорт",
    "coordination": dept_name(CONFIG.coordination_department),
    "count": 3,
    "date": "07.12.2026",
    "deadline": "07.12 09:45",
    "department_name": dept_name(),
    "detail": "0/50",
    "drafts": 2,
    "end": "07.12.2026",
    "events": 4,
    "expected": 3,
    "field": "text",
    "gone": 18,
    "hour_in_minutes": 5,
    "keep": 17,
    "kind": "first_touch",
    "level": 2,
    "limit": 4000,
    # a cluster's mentions only a person can answer (ui.by_hand)
    "links": ["https://vk.com/wall-1_7", "https://vk.com/wall-1_9"],
    "limit_mb": "10.0",  # e-mail: a letter over the size limit
    "listen": "0.0.0.0:8080",
    "mention_id": 1201,
    "mentions": 12,
    "more": 5,
    "messages": 1,
    "minutes": 30,
    "name": staff_name("ivanova"),
    "names": f"{staff_name()}, {staff_name('ivanova')}",
    "negative": 27,
    "number": 3,
    "organisation": CONFIG.organisation,
    "person": 123456789,
    "problems": [
        {"department": dept_name(), "path": "departments[0].telegram", "text": "бот не в чате"}
    ],
    "reason": "жители пишут губернатору",
    "reference": "1201",
    "roles": "Специалист (ЖКХ)",
    "run_id": 4,
    # command arguments: typed after /drill start, so they are shown as ids
    "scenario": "storm",
    "scenarios": ", ".join(sorted(PLAYBOOK.drills)),
    "since": "07.12 09:45",
    "sla": 86,
    "size_mb": "20.0",  # e-mail: a letter over the size limit
    "start": "01.12.2026",
    "starts": [{"title": "Извинение", "text": "Приносим извинения: [что пошло не так]."}],
    "role": "press_secretary",  # an approval tier (approval.yaml)
    "state": CaseState.NEW.value,
    "step": 3,
    # a public reply's text (public.correction): what staff wrote to the citizen
    "text": "Горячую воду дали в 18:00.",
    "subject": PLAYBOOK.code_title(CODE, "ru"),
    "thread": 7,
    "tier": 2,
    "title": "Авария на теплотрассе",
    "transport": "telegram",
    "transports": "telegram, matrix",
    "tz": "Europe/Moscow",
    "until": "07.12 20:00",
    "version": 2,
    "who": staff_name(),
    "window": int(timedelta(hours=6).total_seconds()),
    "year": 2028,
}
# Every value the code may pass for a parameter whose value is itself an id.
FIELDS_IN_CODE = (
    "text",
    "template_id",
    "note",
    "department",
    "reason",
    "outcome",
    "choice",
    "url",
    "follow_up_at",
    "author",
    "step",
)
RIGHTS_OUTSIDE_CARDS = (BACK, CHECKLIST_PRESS, "negative", "not_negative", "forget", "official")
VARIANTS: dict[str, list[Any]] = {
    "action": [a.value for a in Action] + [*RIGHTS_OUTSIDE_CARDS, "merge"],
    "state": [s.value for s in CaseState],
    "field": list(FIELDS_IN_CODE),
    "kind": [
        k.removeprefix("sla.kind.") for k in sorted(SOURCES["ru"]) if k.startswith("sla.kind.")
    ],
    "limit": [4000, None],
    "subject": [PLAYBOOK.code_title(CODE, "ru"), dept_name(), None],
    "department_name": [dept_name(), None],
    "assignee_name": [staff_name(), None],
    "names": [SAMPLES["names"], ""],
    "starts": [SAMPLES["starts"], []],
}


def parameters(texts: Texts, source: str) -> set[str]:
    ast = texts._env.parse(source)  # the locale's own environment: its filters, globals
    return set(meta.find_undeclared_variables(ast)) - {"t", "t_or"}


def renderings(locale: str, key: str) -> Iterator[tuple[dict[str, Any], str]]:
    texts = TEXTS[locale]
    params = parameters(texts, SOURCES[locale][key])
    unknown = params - SAMPLES.keys()
    assert not unknown, (
        f"{key} takes {', '.join(sorted(unknown))}: add sample values to SAMPLES in "
        f"{Path(__file__).name}, so the new text is read too"
    )
    base = {name: SAMPLES[name] for name in params}
    yield base, texts.t(key, **base)
    for name in sorted(params & VARIANTS.keys()):
        for value in VARIANTS[name]:
            values = {**base, name: value}
            yield values, texts.t(key, **values)


def test_both_locales_have_the_same_keys_and_parameters() -> None:
    ru, en = SOURCES["ru"], SOURCES["en"]
    assert sorted(ru.keys() - en.keys()) == [] and sorted(en.keys() - ru.keys()) == []
    differ = {
        key: (parameters(TEXTS["ru"], ru[key]), parameters(TEXTS["en"], en[key]))
        for key in ru
        if parameters(TEXTS["ru"], ru[key]) != parameters(TEXTS["en"], en[key])
    }
    assert differ == {}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("key", sorted(SOURCES["ru"]))
def test_every_message_reads_without_ids(locale: str, key: str) -> None:
    for values, text in renderings(locale, key):
        assert text.strip(), (key, values)
        assert problems_in(text, locale) == [], (key, values, text)


def test_the_check_catches_what_it_is_for() -> None:
    """The patterns find the leaks issue 17 found, so a passing test means something."""
    leaks = [
        "Нет права «Одобрить» в отделе housing",
        "Кейс ведёт petrov",
        "Темы: heating 5",
        "КРИЗИС: heating",
        "12 негативных упоминаний за 6h",
        "за 2 hours",
        "Мы получили ваше обращение",
    ]
    for text in leaks:
        assert problems_in(text, "ru"), text
    assert problems_in("Сценарии: heating-outage, storm", "ru") == []


def test_every_id_a_right_refusal_names_has_words() -> None:
    for locale, texts in TEXTS.items():
        for right in RIGHTS_OUTSIDE_CARDS:
            assert texts.has(f"right.{right}"), (locale, right)
        for name in FIELDS_IN_CODE:
            assert texts.has(f"field.{name}"), (locale, name)


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ru", "en"),
    [
        (timedelta(minutes=1), "1 минуту", "1 minute"),
        (timedelta(minutes=2), "2 минуты", "2 minutes"),
        (timedelta(minutes=5), "5 минут", "5 minutes"),
        (timedelta(minutes=21), "21 минуту", "21 minutes"),
        (timedelta(minutes=12), "12 минут", "12 minutes"),
        (timedelta(hours=1), "1 час", "1 hour"),
        (timedelta(hours=2), "2 часа", "2 hours"),
        (timedelta(hours=6), "6 часов", "6 hours"),
        (timedelta(hours=22), "22 часа", "22 hours"),
        (timedelta(minutes=90), "1 час 30 минут", "1 hour 30 minutes"),
        (timedelta(days=1, hours=1), "1 день 1 час", "1 day 1 hour"),
        (timedelta(days=5), "5 дней", "5 days"),
        (timedelta(seconds=30), "30 секунд", "30 seconds"),
        (timedelta(0), "0 минут", "0 minutes"),
        (7260, "2 часа 1 минуту", "2 hours 1 minute"),
    ],
)
def test_durations_in_words(value: timedelta | int, ru: str, en: str) -> None:
    assert spell_duration(value, "ru") == ru
    assert spell_duration(value, "en") == en
    assert TEXTS["ru"].duration(value) == ru


def test_russian_plural_forms() -> None:
    forms = {n: plural_form(n, "ru") for n in (1, 2, 4, 5, 11, 12, 14, 21, 22, 25, 101, 111)}
    assert forms == {
        1: 0,
        2: 1,
        4: 1,
        5: 2,
        11: 2,
        12: 2,
        14: 2,
        21: 0,
        22: 1,
        25: 2,
        101: 0,
        111: 2,
    }


def test_a_duration_filter_keeps_text_from_older_views() -> None:
    # A crisis card queued before durations became seconds carries "1h": shown as it was.
    ru = TEXTS["ru"]
    assert "1 час" in ru.t("crisis.opened", **{**SAMPLES, "window": 3600})
    assert "за 1h" in ru.t("crisis.opened", **{**SAMPLES, "window": "1h"})


# --- codes ----------------------------------------------------------------------------------


def test_every_code_the_playbook_uses_has_a_title_in_every_locale() -> None:
    untitled = {
        (code, locale)
        for code in playbook_codes(PLAYBOOK)
        for locale in LOCALES
        if code not in PLAYBOOK.routing.code_titles
        or not PLAYBOOK.routing.code_titles[code].has(locale)
    }
    assert untitled == set()
    assert PLAYBOOK.code_title("heating", "ru") == "Отопление"
    assert PLAYBOOK.code_title("heating", "en") == "Heating"
    assert PLAYBOOK.code_title("not-in-the-playbook", "ru") == "not-in-the-playbook"


# --- reply templates (templates.yaml) --------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template_id", [t.id for t in PLAYBOOK.templates])
def test_every_reply_template_reads_without_ids(locale: str, template_id: str) -> None:
    template = PLAYBOOK.template(template_id)
    for author_name in ("Анна", ""):
        text = template.render(
            locale,
            author_name=author_name,
            department_name=dept_name(),
            case_id=42,
            org_name=CONFIG.organisation,
            mention_url="https://vk.com/wall-1_2",
        )
        assert text and problems_in(text, locale) == [], text
        title = template.title.get(locale)
        assert problems_in(title, locale) == [], title


def test_apology_and_refutation_start_an_answer_not_a_first_reply() -> None:
    uses = {t.id: t.used_as for t in PLAYBOOK.templates}
    assert uses["apology"] is TemplateUse.ANSWER and uses["refutation"] is TemplateUse.ANSWER
    assert uses["first-touch"] is TemplateUse.FIRST_TOUCH
    assert uses["move-to-private"] is TemplateUse.FIRST_TOUCH


# --- page templates (*.j2) -------------------------------------------------------------------

AUTHOR = {
    "name": "Пётр Сидоров",
    "labels": [label.value for label in AuthorLabel],
    "negative_count": 3,
    "total_mentions": 5,
}
CASE = {
    "id": 42,
    "state": CaseState.AWAITING_APPROVAL.value,
    "priority": Priority.HIGH.value,
    "department": DEPT,
    "escalation_level": 1,
    "drill": False,
    "mention_count": 3,
    "outcome": "moved_to_private",
    "ignore_reason": "do_not_engage",
}
CARD = {
    "case": CASE,
    "department_name": dept_name(),
    "route_confidence": 0.82,
    "source": "vk",
    "deadline": "07.12 09:45",
    "assignee_name": staff_name(),
    "author": AUTHOR,
    "text": "Третий день нет горячей воды",
    "text_cut": True,
    "url": "https://vk.com/wall-1_2",
    "draft": {
        "version": 2,
        "status": DraftStatus.PENDING.value,
        "text": "Здравствуйте!",
        "chain": [
            {"tier": "department", "state": "done", "by": staff_name()},
            {"tier": "press_secretary", "state": "current", "by": None},
            {"tier": "leadership", "state": "waiting", "by": None},
        ],
    },
    "moved_to": dept_name("transport"),
    "sla": {
        "key": "sla.card_due",
        "params": {"kind": "first_touch", "deadline": "07.12 09:45"},
        "reminder": "80%",
    },
}
CRISIS = {
    "id": 7,
    "threshold": "heating-surge",
    "scope": "code",
    "subject": PLAYBOOK.code_title(CODE, "ru"),
    "window": 6 * 3600,
    "limit": 10,
    "count_at_open": 12,
    "peak_count": 15,
    "peak_at": "07.12 11:00",
    "opened_at": "07.12 09:45",
    "below_since": "07.12 12:00",
    "closed_at": None,
    "cool_down": 2 * 3600,
    "drill": False,
}
CHECKLIST = [
    {
        "step": {"ru": step.step.ru, "en": step.step.en},
        "owner": step.owner.value,
        "who": staff_name(),
        "due": "07.12 10:00",
        "done": {"by": staff_name(), "at": "07.12 09:55"} if i == 0 else None,
    }
    for i, step in enumerate(PLAYBOOK.crisis.checklist)
]
FIGURES = {
    "department": DEPT,
    "department_name": dept_name(),
    "cases": 4,
    "reaction": {"done": 4, "average_min": 3.0, "longest_min": 6, "met": 4, "breached": 0},
    "first_touch": {"done": 4, "average_min": 12.5, "longest_min": 20, "met": 3, "breached": 1},
    "answer": {"done": 2, "average_min": 40.0, "longest_min": 55, "met": 1, "breached": 1},
    "breaches": 2,
    "escalated_cases": 1,
    "escalations": 1,
    "highest_level": 1,
    "cases_by_level": {"1": 1},
    "left_open": 1,
    "actors": {STAFF: 3, "ivanova": 2},
}
STAFF_NAMES = {s.id: s.name for s in CONFIG.staff}
ROWS = [["ЖКХ", 4, 3, 1, 0, "75%"], ["Всего", 4, 3, 1, 0, "75%"]]


def page_samples(locale: str) -> dict[str, dict[str, Any]]:
    t = TEXTS[locale].t
    return {
        "card.html.j2": CARD,
        "case_thread.html.j2": {
            **CARD,
            "drafts": [
                {
                    "version": 1,
                    "status": DraftStatus.CHANGES_REQUESTED.value,
                    "author_name": staff_name(),
                    "text": "Здравствуйте!",
                    "note": "Добавьте сроки",
                }
            ],
            "events": [
                {"at": "07.12 09:45", "actor": staff_name(), "kind": a.value, "detail": "—"}
                for a in Action
            ]
            + [{"at": "07.12 09:45", "actor": t("ui.system_actor"), "kind": "escalated"}],
            "why_negative": {"signals": ["«опять»", "«не работает»"], "p": 0.91},
        },
        "crisis.html.j2": {
            "crisis": CRISIS,
            "checklist": CHECKLIST,
            "checklist_done": 1,
            "holding_statement": {"ru": "Нам известно о ситуации.", "en": "We are aware."},
            "pause_scheduled_posts": True,
        },
        "digest.html.j2": {
            "date": "07.12.2026",
            "generated_at": "19:00",
            "totals": {
                "new": 12,
                "answered": 9,
                "overdue": 1,
                "open": 5,
                "not_negative": 2,
                "negative": 27,
            },
            "sla": {
                "percent": 86,
                "first_touch_met": 10,
                "first_touch_due": 11,
                "answer_met": 8,
                "answer_due": 10,
                "reaction_met": 11,
                "reaction_due": 11,
            },
            "times": {
                "first_touch_median": "0:12",
                "first_touch_p90": "0:40",
                "answer_median": "2:05",
                "answer_p90": "5:30",
                "first_touch_count": 11,
                "answer_count": 10,
            },
            "departments": [
                {
                    "name": dept_name(),
                    "new": 5,
                    "answered": 4,
                    "overdue": 1,
                    "open": 2,
                    "not_negative": 1,
                    "sla": 80,
                    "first_touch_median": "0:10",
                }
            ],
            "departments_more": 1,
            "sources": [{"name": "vk", "new": 5, "answered": 4, "overdue": 1, "open": 2}],
            "sources_more": 0,
            "crises": [
                {
                    "subject": PLAYBOOK.code_title(CODE, "ru"),
                    "scope": "code",
                    "opened_at": "09:45",
                    "closed_at": None,
                    "count_at_open": 12,
                    "peak_count": 15,
                    "peak_at": "11:00",
                    "timeline": [{"at": "09:45", "event": "opened", "count": 12}],
                    "checklist": {"done": 2, "steps": 7, "first": "09:55", "last": "10:30"},
                }
            ],
            "crises_more": 0,
            "codes": [{"code": PLAYBOOK.code_title(CODE, "ru"), "cases": 5}],
            "critics": [{"name": "Пётр Сидоров", "mentions": 9, "negative": 7}],
            "leaders": [{"name": "Мария Кузьмина", "mentions": 4, "negative": 1}],
            "oldest": [
                {
                    "id": 40,
                    "department": dept_name(),
                    "state": "taken",
                    "age": {"days": 1, "hours": 3},
                }
            ],
            "corrections": [
                {"case_id": 41, "department": dept_name(), "actor": staff_name(), "at": "12:00"}
            ],
        },
        "draft.html.j2": {
            "case_id": 42,
            "version": 2,
            "text": "Здравствуйте!",
            "author_name": staff_name(),
            "status": DraftStatus.CHANGES_REQUESTED.value,
            "reviewer_name": staff_name("ivanova"),
            "note": "Добавьте сроки",
            "drill": True,
            "chain": [
                {"tier": "department", "state": "done", "by": staff_name()},
                {"tier": "press_secretary", "state": "stopped", "by": None},
            ],
        },
        "drill_report.html.j2": {
            "title": t("drill_report.title", run_id=4, title="Авария на теплотрассе"),
            "started": "07.12 09:00",
            "ended": "07.12 10:00",
            "run": {"id": 4, "scenario": "utility-outage-storm", "hour_in_minutes": 5},
            "overall": {**FIGURES, "department": None, "department_name": None},
            "departments": [FIGURES],
            "names": STAFF_NAMES,
            "checklist": [
                {"step": 0, "text": CHECKLIST[0]["step"][locale], "at": "", "actor": STAFF}
                | {"minutes": 7, "crisis": 1}
            ],
            "previous_id": 3,
            "deltas": {
                "first_touch_average_min": -2.5,
                "answer_average_min": None,
                "breaches": -1,
                "left_open": 0,
                "escalations": 1,
            },
        },
        **{
            name: {
                "title": t("drill_report.title", run_id=4, title="Авария на теплотрассе"),
                "started": "07.12 09:00",
                "ended": "07.12 10:00",
                "summary_columns": [t("drill_report.columns.department")],
                "summary": [[dept_name()], [t("drill_report.overall")]],
                "checklist_columns": [t("drill_report.columns.step")],
                "checklist": [[1, CHECKLIST[0]["step"][locale], "09:55", staff_name(), 7]],
                "delta_columns": [t("drill_report.columns.measure")],
                "deltas": [[t("drill_report.columns.left_open"), 0]],
                "previous_id": 3,
            }
            for name in ("drill_report.md.j2", "drill_export.html.j2")
        },
        "help.html.j2": {},
        "pack.html.j2": {
            "items": [
                {
                    "case_id": 42 + rank,
                    "version": 1,
                    "priority": p.value,
                    "state": "taken" if rank == 1 else "new",
                    "source": "vk",
                    "text": "Во дворе на Садовой 8 не горят фонари",
                    "mentions": 1,
                    "carded": rank == 1,
                }
                for rank, p in enumerate(Priority)
            ],
        },
        "queue.html.j2": {
            "waiting": 12,
            "items": [{"case_id": 42, "priority": p.value} for p in Priority],
            "more": 3,
        },
        **{
            name: {
                "title": t(
                    "report.title", start="01.12.2026", end="07.12.2026", tz="Europe/Moscow"
                ),
                "generated_at": "07.12.2026 19:00",
                "part": part,
                "summary_columns": [t("report.summary.department"), t("report.summary.cases")],
                "summary": ROWS,
                "case_columns": [t("report.case.id"), t("report.case.department")],
                "author_columns": [t("report.author.id"), t("report.author.name")],
                "rows": [[42, dept_name()]],
                "drill_note": t("report.drill_note", count=2),
            }
            for name in ("report.html.j2", "report.md.j2")
            for part in ("head",)
        },
        "status.html.j2": {
            "generated_at": "07.12 09:45",
            "departments": [
                {
                    "name": dept_name(),
                    "open": 3,
                    "overdue": 1,
                    "at_risk": 1,
                    "oldest_waiting": 2 * 3600 + 5 * 60,
                },
                {
                    "name": dept_name("transport"),
                    "open": 0,
                    "overdue": 0,
                    "at_risk": 0,
                    "oldest_waiting": None,
                },
            ],
            "crises": [
                {
                    "subject": PLAYBOOK.code_title(CODE, "ru"),
                    "opened_at": "07.12 09:45",
                    "peak_count": 15,
                    "limit": 10,
                    "cooling_down": True,
                }
            ],
            "channels": [
                {
                    "id": "telegram",
                    "failing_for": 20 * 60,
                    "error": "TelegramNetworkError: timeout",
                    "delivered": True,
                    "received_ago": 3 * 60,
                },
                {
                    "id": "form",
                    "failing_for": None,
                    "error": None,
                    "delivered": False,
                    "received_ago": 3600,
                },
            ],
        },
        "triage.html.j2": {
            "items": [
                {
                    "mention_id": 1201,
                    "source": "vk",
                    "author": "Пётр Сидоров",
                    "text": "Опять всё как всегда",
                    "url": "https://vk.com/wall-1_2",
                }
            ],
            "more": 2,
            "commands": True,
        },
        "weekly.html.j2": {
            "from": "30.11",
            "to": "06.12",
            "trends": [
                {"name": name, "this": "12", "previous": "10", "delta": 2}
                for name in ("new", "answered", "negative", "not_negative", "sla", "answer_median")
            ],
            "ranking": [
                {"place": 1, "name": dept_name(), "sla": 90, "answer_median": "1:10", "new": 5}
            ],
            "ranking_more": 0,
            "authors": [
                {
                    "name": "Пётр Сидоров",
                    "negative": 7,
                    "mentions": 9,
                    "labels": ["systematic_critic"],
                }
            ],
            "codes": [{"code": PLAYBOOK.code_title(CODE, "ru"), "cases": 5, "previous": 3}],
        },
    }


def page_names(locale: str) -> list[str]:
    folder = DEFAULT_TEMPLATES_DIR / locale
    return sorted(f.relative_to(folder).as_posix() for f in folder.rglob("*.j2"))


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", page_names("ru"))
def test_every_page_template_reads_without_ids(locale: str, name: str) -> None:
    samples = page_samples(locale)
    assert name in samples, (
        f"{name} has no sample context in {Path(__file__).name}: add one, so it is read too"
    )
    text = TEXTS[locale].render(name, **samples[name])
    assert text.strip()
    assert problems_in(text, locale) == [], text


def test_the_crisis_card_says_durations_in_words() -> None:
    card = TEXTS["ru"].render("crisis.html.j2", **page_samples("ru")["crisis.html.j2"])
    assert "за 6 часов: 12 при пороге 10" in card and "продержится 2 часа" in card
    assert "КРИЗИС: Отопление" in card and "Первое заявление" in card
    status = TEXTS["ru"].render("status.html.j2", **page_samples("ru")["status.html.j2"])
    assert "Дольше всех ждёт: 2 часа 5 минут" in status
    assert (
        "🔴 Telegram: отправка не проходит 20 минут (TelegramNetworkError: timeout); "
        "входящее 3 минуты назад" in status
    )
    assert "🟢 веб-форма: входящее 1 час назад" in status


# --- refusals: names, not ids ----------------------------------------------------------------


def test_refusals_name_the_department_and_the_colleague() -> None:
    directory = Directory(CONFIG)
    ru = TEXTS["ru"]

    def said(error: DomainError) -> str:
        view = refusal_view(error, directory, name_the_right=True)
        return ru.t(view["key"], **view["params"])

    assert said(NoRight(action="approve", department=DEPT)) == (
        "Действие «Одобрить» вам недоступно в отделе «ЖКХ». Если это ошибка, обратитесь "
        "к руководителю отдела."
    )
    assert said(NoRight(action="forget", department="*")).startswith(
        "Действие «Удалить данные автора» вам недоступно. "
    )
    assert said(NotAssignee(assignee=STAFF)).startswith("Кейс ведёт Сергей Петров: ")
    assert said(NotAssignee(assignee=None)) == "Сначала возьмите кейс в работу."
    assert said(UnknownCase(case_id=42)) == "Кейс №42 не найден."
    # A short answer to a press does not say which right: the alert is small.
    assert refusal_view(NoRight(action="approve", department=DEPT), directory)["key"] == (
        "ui.no_rights"
    )


def test_a_case_number_reads_as_russian_writes_it() -> None:
    # Messages say «Кейс №42»: people type back what they read.
    assert [case_number(w) for w in ("42", "#42", "№42", "№", "42a")] == [42, 42, 42, None, None]


def test_case_history_says_why_in_words() -> None:
    """/case N: the reason stored with an event is an id; the history shows its words."""
    answers = Answers(cases=None, directory=Directory(CONFIG), texts=TEXTS["ru"])  # type: ignore[arg-type]
    detail = answers._detail
    assert detail("wait_for_author", {"reason": "moved_to_private"}) == (
        "Перешли в личные сообщения"
    )
    assert detail("ignore", {"reason": "do_not_engage"}) == "Не вступаем в диалог"
    assert detail("reroute", {"target": "transport"}) == "Транспорт"
    assert detail("close", {"outcome": "resolved"}) == "Решено"
    assert detail("ignore", {"reason": "a_reason_from_the_future"}) == ""
