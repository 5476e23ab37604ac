"""check_rules, the dry run's view of routing: it agrees with `route` on what matched, and
says which rules almost matched (one criterion short, or a phrase's words apart)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.intake.lemmas import Lemmatiser
from bot.intake.routing import check_rules, route
from bot.model import AuthorLabel
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook

RULES = """rules:
  - id: vk-water
    department: housing
    match:
      sources: [vk]
      keywords: [горяч вод]
  - id: leaders
    department: coordination
    match:
      author_labels: [opinion_leader]
"""


def test_matches_agree_with_route_and_near_misses_are_named(tmp_path: Path) -> None:
    playbook_dir = tmp_path / "playbook"
    shutil.copytree(DEFAULT_PLAYBOOK_DIR, playbook_dir)
    routing = playbook_dir / "routing.yaml"
    routing.write_text(
        routing.read_text(encoding="utf-8").replace("rules:\n", RULES, 1), encoding="utf-8"
    )
    playbook = load_playbook(playbook_dir)
    stem = Lemmatiser().lemma
    texts = (
        "Третий день нет горячей воды",
        "Вода не горячая",
        "Автобус 12 опять не пришёл",
        "Батареи ледяные, отопления нет",
    )
    for text in texts:
        for source in ("vk", "email"):
            checks = check_rules(playbook, text, source, stem=stem)
            first = next((c.rule_id for c in checks if c.matched), None)
            assert first == route(playbook, text, source, stem=stem).rule_id, (text, source)

    by_id = {c.rule_id: c for c in check_rules(playbook, texts[0], "email", stem=stem)}
    # Keywords there, source not: one criterion short.
    assert by_id["vk-water"].almost and not by_id["vk-water"].matched
    assert [c.name for c in by_id["vk-water"].conditions if not c.met] == ["sources"]
    # A lone failing criterion is no near miss: the rule has nothing to do with the text.
    assert not by_id["leaders"].almost and not by_id["leaders"].matched

    apart = {c.rule_id: c for c in check_rules(playbook, texts[1], "vk", stem=stem)}
    water = apart["vk-water"]
    assert water.almost and water.conditions[-1].near == ("горяч вод",)
    leader = check_rules(playbook, "x", "vk", author_labels=[AuthorLabel.OPINION_LEADER])
    assert next(c for c in leader if c.rule_id == "leaders").matched
