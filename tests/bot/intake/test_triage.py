"""Which sources' uncertain mentions wait on the triage list, as the config says. The list
itself is tested end to end (tests/e2e/test_triage_telegram.py, test_triage_matrix.py) and in
the store (tests/store/test_corrections.py)."""

from __future__ import annotations

from pathlib import Path

from bot.intake.triage import triage_ref
from bot.settings.config import load_config
from tests.bot.settings.test_config import base, write


def test_every_source_is_listed_unless_configured_off(tmp_path: Path) -> None:
    data = base()
    data["api"] = {
        "sources": [
            {"name": "forms", "token": "forms-token-0123456789"},
            {"name": "monitoring", "token": "monitoring-token-0123456789", "triage": False},
        ]
    }
    data["feeds"] = [
        {"name": "news", "url": "https://example.gov.ru/rss"},
        {"name": "blogs", "url": "https://blogs.example.org/rss", "triage": False},
    ]
    config = load_config(write(tmp_path, data), env={})
    assert config.triage_skipped_sources == {"monitoring", "rss:blogs"}
    assert load_config(write(tmp_path, base()), env={}).triage_skipped_sources == frozenset()
    assert triage_ref("coordination") == "triage:coordination"
