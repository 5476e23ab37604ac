"""A small, readable config for service tests (the shipped example is tested on its own)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from bot.model import Identity, Mention, Sentiment
from bot.settings.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]

# A pack card (playbooks/templates/ru/pack.html.j2): its head, and a line per case.
PACK_HEAD = "Новые упоминания:"
PACK_LINE = re.compile(r"/case (\d+)")

CONFIG_YAML = """
locale: ru
timezone: Europe/Moscow
database: {{url: "{url}"}}
playbooks: {{path: "{root}/playbooks/default", templates: "{root}/playbooks/templates"}}
departments:
  - {{id: housing, name: ЖКХ, telegram: {{chat_id: -100111, topic_id: 7}},
     matrix: {{room_id: "!housing:example.org"}}}}
  - {{id: transport, name: Транспорт, telegram: {{chat_id: -100222}}}}
  - {{id: coordination, name: ЦУР, telegram: {{chat_id: -100999}}}}
coordination_department: coordination
api:
  listen: 127.0.0.1:{port}
  sources:
    - {{name: monitoring, token: "${{MON_TOKEN:-}}", scopes: [ingest, read]}}
    - {{name: forms, token: "${{FORMS_TOKEN:-}}"}}
    - {{name: brand, token: "${{BRAND_TOKEN:-}}", mapping: brand}}
mappings:
  brand:
    fields: {{external_id: post.id, text: post.body, url: post.link, author.id: post.user.uid,
              author.name: post.user.name, author.email: post.user.email,
              sentiment: post.tone}}
    constants: {{author.channel: vk}}
    sentiment_values: {{neg: negative, pos: positive, neu: neutral}}
metrics: {{listen: "127.0.0.1:0", token: "${{METRICS_TOKEN:-}}"}}
outbox: {{poll_interval_s: 0.05, base_retry_s: 0.05, max_retry_s: 1}}
staff:
  - {{id: spec, name: Анна Иванова, telegram_id: 1001, roles: {{housing: [specialist]}}}}
  - {{id: spec2, name: Борис Орлов, telegram_id: 1002, roles: {{housing: [specialist]}}}}
  - {{id: appr, name: Вера Петрова, telegram_id: 1003, roles: {{housing: [approver]}}}}
  - {{id: lead, name: Глеб Смирнов, telegram_id: 1004, roles: {{housing: [lead]}}}}
  - {{id: duty, name: Дарья Морозова, telegram_id: 1005, global_roles: [duty]}}
  - {{id: tspec, name: Егор Волков, telegram_id: 1006, roles: {{transport: [specialist]}}}}
"""


API_TOKENS = {
    "MON_TOKEN": "mon-secret-token-123",
    "FORMS_TOKEN": "forms-secret-token-456",
    "BRAND_TOKEN": "brand-secret-token-789",
    "METRICS_TOKEN": "metrics-secret-token-0123456789abcdef",
}


def make_config(tmp_path: Path, url: str, port: int = 0) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG_YAML.format(url=url, root=ROOT, port=port), encoding="utf-8")
    return load_config(path, env=API_TOKENS)


def make_mention(
    external_id: str,
    at: datetime,
    text: str = "Третий день нет отопления",
    author: str | None = None,
    sentiment: Sentiment = Sentiment.NEGATIVE,
) -> Mention:
    return Mention(
        source="vk",
        external_id=external_id,
        text=text,
        # One author per mention unless told: the same author's mentions are grouped.
        author=Identity("vk", author or f"id-{external_id}", "Пётр Сидоров"),
        received_at=at,
        url=f"https://vk.com/wall-1_{external_id}",
        sentiment=sentiment,
    )


def newcomers_config(tmp_path: Path, port: int) -> Path:
    """config.example.yaml as `make run` copies it, with the database and the port moved
    into the test's own place (two runs must not share data/ or :8080)."""
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    moved = text.replace(
        "sqlite+aiosqlite:///data/otklik.db", f"sqlite+aiosqlite:///{tmp_path}/otklik.db"
    )
    moved = moved.replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}")
    # Paths in a config are relative to its file: the playbooks stay the checkout's.
    for relative in ("playbooks/default", "playbooks/templates"):
        moved = moved.replace(f": {relative}\n", f": {ROOT / relative}\n")
    assert moved.count(str(tmp_path)) == 1 and f":{port}" in moved, "the example config changed"
    path = tmp_path / "config.yaml"
    path.write_text(moved, encoding="utf-8")
    return path
