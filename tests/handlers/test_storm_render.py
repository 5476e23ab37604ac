"""Every renderer shows the storm: the queue message's clusters and counts, and the crisis
card's clusters, in Russian and English (Telegram, Matrix, the sandbox)."""

from __future__ import annotations

import json

import pytest

from bot.messages import views
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from handlers.matrix.render import MatrixRenderer
from handlers.sandbox.render import SandboxRenderer
from handlers.telegram.render import TelegramRenderer

QUEUE = views.queue_view(
    40,
    [
        {"case_id": 7, "priority": "high", "mentions": 137},
        {"case_id": 9, "priority": "critical", "mentions": 1},
    ],
    12,
    cases=14,
    mentions=200,
    more_mentions=62,
    updating=2,
    updating_mentions=5,
)
STORM = [
    {
        "case_id": 41,
        "department": "Транспорт",
        "story": "Автобус 41 опять не пришёл <стоим>",
        "mentions": 137,
        "people": 120,
        "recent": 42,
        "previous": 17,
        "trend": "up",
        "new": True,
    }
]
CRISIS = {
    "id": 1, "threshold": "t", "scope": "department", "subject": "Транспорт", "window": 3600,
    "limit": 15, "count_at_open": 20, "peak_count": 150, "peak_at": "20.11 16:40",
    "opened_at": "20.11 16:30", "below_since": None, "closed_at": None, "cool_down": 1800,
    "drill": False,
}  # fmt: skip
CARD = views.page_view(
    "crisis.html.j2",
    {
        "crisis": CRISIS,
        "checklist": [],
        "holding_statement": {},
        "pause_scheduled_posts": False,
        "checklist_done": 0,
        "storm": STORM,
        "trend_minutes": 15,
    },
)
EXPECTED = {
    "ru": (
        "Очередь: 14 кейсов, 200 упоминаний",
        "case 7 — 137 упоминаний",
        "… и ещё 12 кейсов: 62 упоминания",
        "5 новых упоминаний в карточках выше (2)",
        "🆕 /case 41 (Транспорт) «Автобус 41 опять не пришёл <стоим>» — 137 упоминаний, "
        "120 чел. ↑ 42/17",
    ),
    "en": (
        "Queue: 14 cases, 200 mentions",
        "case 7 — 137 mentions",
        "… and 12 more cases: 62 mentions",
        "5 new mentions on cards above (2)",
        "🆕 /case 41 (Транспорт) «Автобус 41 опять не пришёл <стоим>» — 137 mentions, "
        "120 people ↑ 42/17",
    ),
}


def _plain(html: str) -> str:
    for tag in ("<b>", "</b>", "<code>", "</code>", "<i>", "</i>"):
        html = html.replace(tag, "")
    return html.replace("&lt;", "<").replace("&gt;", ">").replace("&#34;", '"')


def _tree_text(node: object) -> str:
    """The sandbox's body tree as its text."""
    return "".join(_texts(json.loads(json.dumps(node))))


def _texts(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    if isinstance(node, dict):
        return [t for item in node.values() for t in _texts(item)]
    return []


@pytest.mark.parametrize("locale", ["ru", "en"])
def test_queue_and_crisis_card_in_every_renderer(locale: str) -> None:
    texts = texts_for(DEFAULT_TEMPLATES_DIR, locale)
    header, listed, more, updating, cluster = EXPECTED[locale]

    telegram = TelegramRenderer(texts)
    queue, card = (_plain(telegram.render(v).text) for v in (QUEUE, CARD))
    assert header in queue and f"/{listed}" in queue and more in queue and updating in queue
    assert "/case 9 —" not in queue  # one mention: no count to show
    assert cluster in card

    matrix = MatrixRenderer(texts)
    queue, card = (matrix.render(v).body for v in (QUEUE, CARD))
    assert header in queue and f"!{listed}" in queue and more in queue and updating in queue
    assert cluster in card

    sandbox = SandboxRenderer(texts)
    queue, card = (_tree_text(sandbox.render(v)["body"]) for v in (QUEUE, CARD))
    assert header in queue and f"/{listed}" in queue and more in queue
    assert cluster.replace("/case 41", "").split("«")[1] in card
