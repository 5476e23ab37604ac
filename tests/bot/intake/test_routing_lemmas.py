"""Routing keywords match as written stems and, with the lemmatiser, as whole words."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.intake.lemmas import Lemmatiser
from bot.intake.routing import route
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook


def test_a_whole_word_keyword_matches_its_other_forms_only_with_lemmas(tmp_path: Path) -> None:
    playbook_dir = tmp_path / "playbook"
    shutil.copytree(DEFAULT_PLAYBOOK_DIR, playbook_dir)
    routing = playbook_dir / "routing.yaml"
    text = routing.read_text(encoding="utf-8")
    rule = (
        "rules:\n  - id: children\n    department: education\n"
        "    match:\n      keywords: [ребёнок]\n"
    )
    routing.write_text(text.replace("rules:\n", rule, 1), encoding="utf-8")
    playbook = load_playbook(playbook_dir)
    complaint = "Детей опять не кормят горячим"  # "детей" does not begin with "ребёнок"
    assert route(playbook, complaint, "vk").rule_id != "children"
    assert route(playbook, complaint, "vk", stem=Lemmatiser().lemma).rule_id == "children"
    # Stems written for prefix matching keep working with the lemmatiser plugged in.
    heating = "Батареи ледяные, отопления нет"
    assert route(playbook, heating, "vk", stem=Lemmatiser().lemma).department == "housing"
