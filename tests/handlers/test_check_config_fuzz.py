"""check-config never crashes: hundreds of broken variants of the example config and of every
shipped playbook file, each run through the real command in-process.

Each variant changes one file of a valid setup (a key deleted, a value of another type, an
impossible date, a number out of range, an unknown key, a mistyped id, a duplicated item, the
file cut short, YAML syntax broken, bytes that are not UTF-8, ...), runs `otklik check-config`
and restores the file. The answer must be exit 0 (the change happened to be valid) or exit 2
with one `file: field: message` line per problem; never a traceback, never another code.
The variants are drawn from a seeded random generator, so a failure reproduces. The suite
makes each change once per file; OTKLIK_FUZZ_VARIANTS=28 (or more) draws more of them.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from handlers.cli import app
from tests.doubles.support import ROOT

SEED = 17
# Per text file: 13 makes each of the 13 YAML changes once (each calendar change twice); x 16
# text files, plus 12 for each of the 3 model files: 244 variants (484 with 28).
VARIANTS_PER_FILE = int(os.environ.get("OTKLIK_FUZZ_VARIANTS", "13"))
PLAYBOOK = ROOT / "playbooks" / "default"
runner = CliRunner()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    file: str  # relative to the setup directory
    kind: str
    content: bytes | None  # None: the file is removed
    certainly_invalid: bool  # a valid setup cannot come out of this change

    def __str__(self) -> str:
        return f"{self.file} [{self.kind}]"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_setup(tmp_path_factory.mktemp("fuzz"))


def make_setup(root: Path) -> Path:
    """A valid setup: the example config pointing at a copy of the default playbook (its
    training corpus left out: check-config does not read it) and an organisation's model."""
    shutil.copytree(PLAYBOOK, root / "playbook", ignore=shutil.ignore_patterns("corpus"))
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    text = text.replace("path: playbooks/default", f"path: {root}/playbook")
    text = text.replace("templates: playbooks/templates", f"templates: {ROOT}/playbooks/templates")
    text = text.replace("sqlite+aiosqlite:///data/otklik.db", f"sqlite+aiosqlite:///{root}/o.db")
    (root / "config.yaml").write_text(text, encoding="utf-8")
    # The organisation's own model (config model.path), as retraining leaves it.
    (root / "data" / "models").mkdir(parents=True)
    shutil.copy(PLAYBOOK / "models" / "sentiment.npz", root / "data/models/sentiment.org.npz")
    return root


def check(setup: Path) -> Any:
    return runner.invoke(app, ["check-config", "-c", str(setup / "config.yaml")], env={})


# --- mutations --------------------------------------------------------------------------------

OTHER_TYPES: list[object] = [7, "x y", [1, "a"], {"k": 1}, None, True, -3.5]
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
IMPOSSIBLE_DATES = ["2026-02-30", "2026-11-31", "2027-13-01", "2026-04-31", "2026-00-10"]
OUT_OF_RANGE: list[object] = [-1, 0, 10**30, 2**70, 1e308 * 10, -(10**12), 0.0000001]
SYNTAX_BREAKS = [
    "key: [unclosed\n",
    "\t- tab indented\n",
    ": : :\n",
    "{{{\n",
    '"unterminated\n',
    "- *undefined_alias\n",
    "  - misplaced: [1, 2\n",
    "!!python/object:os.system {}\n",
    "a: !!int abc\n",
    "big: " + "9" * 5000 + "\n",
    "&loop [*loop]\n",
    "? [1, 2]\n: unhashable\n",
]
HOSTILE = ["[/x]", "[bold red]", "{{ 7 * 7 }}", "${UNSET_VARIABLE}", "\x1b[31m", "ж" * 3000]
BAD_BYTES = [b"\xff\xfe", b"\xc3\x28", b"\x80", b"\xed\xa0\x80"]


def nodes(
    data: object, path: tuple[object, ...] = ()
) -> Iterator[tuple[tuple[object, ...], object]]:
    """Every node of parsed YAML with its path (keys and indexes)."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from nodes(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from nodes(value, (*path, i))


def replace_at(data: Any, path: tuple[object, ...], value: object) -> Any:
    if not path:
        return value
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return data


def dump(data: object) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode()


def yaml_variants(rng: random.Random, name: str, original: bytes, strict: bool) -> list[Variant]:
    """`strict`: the file is a settings model that rejects unknown keys and needs its keys
    (the lexicon's word lists accept any word)."""
    text = original.decode()
    parsed: Any = yaml.safe_load(text)
    everything = list(nodes(parsed))[1:]
    mappings = [(p, n) for p, n in nodes(parsed) if isinstance(n, dict) and n]
    top_keys = list(parsed) if isinstance(parsed, dict) else []

    def fresh() -> Any:
        return yaml.safe_load(text)

    def delete_key() -> tuple[bytes, bool]:
        path, mapping = rng.choice(mappings)
        data = fresh()
        target = data
        for part in path:
            target = target[part]
        del target[rng.choice(list(mapping))]
        return dump(data), False

    def retype() -> tuple[bytes, bool]:
        path, node = rng.choice(everything)
        value = rng.choice([t for t in OTHER_TYPES if type(t) is not type(node)])
        return dump(replace_at(fresh(), path, value)), False

    def retype_top() -> tuple[bytes, bool]:
        key = rng.choice(top_keys)
        node = parsed[key]
        kinds = [t for t in OTHER_TYPES if type(t) is not type(node) and t is not None]
        value = rng.choice(kinds)
        return dump(replace_at(fresh(), (key,), value)), strict and isinstance(node, dict | list)

    def unknown_key() -> tuple[bytes, bool]:
        path, _ = rng.choice(mappings)
        data = fresh()
        target = data
        for part in path:
            target = target[part]
        target["bogus_setting"] = 1
        return dump(data), strict

    def impossible_date() -> tuple[bytes, bool]:
        lines = text.splitlines(keepends=True)
        dated = [i for i, line in enumerate(lines) if DATE.search(line.split("#")[0])]
        if dated:  # unquoted, as an administrator types them
            at = rng.choice(dated)
            lines[at] = DATE.sub(rng.choice(IMPOSSIBLE_DATES), lines[at], count=1)
            return "".join(lines).encode(), strict
        path, _ = rng.choice(everything)
        return dump(replace_at(fresh(), path, rng.choice(IMPOSSIBLE_DATES))), False

    def out_of_range() -> tuple[bytes, bool]:
        numbers = [(p, n) for p, n in everything if isinstance(n, int | float)]
        path, _ = rng.choice(numbers or everything)
        return dump(replace_at(fresh(), path, rng.choice(OUT_OF_RANGE))), False

    def wrong_id() -> tuple[bytes, bool]:
        strings = [
            (p, n) for p, n in everything if isinstance(n, str) and re.fullmatch(r"[a-z0-9_-]+", n)
        ]
        path, value = rng.choice(strings or everything)
        typo = f"{value}x" if rng.random() < 0.5 else f"{value}"[:-1] + "Q"
        return dump(replace_at(fresh(), path, typo)), False

    def duplicate_item() -> tuple[bytes, bool]:
        lists = [
            (p, n)
            for p, n in nodes(parsed)
            if isinstance(n, list) and n and isinstance(n[0], dict) and "id" in n[0]
        ]
        if not lists:
            return retype()
        path, items = rng.choice(lists)
        data = fresh()
        target = data
        for part in path:
            target = target[part]
        target.append(dict(rng.choice(items)))
        return dump(data), strict

    def hostile_text() -> tuple[bytes, bool]:
        # Console markup, a template, an unset variable, a long line: shown, never obeyed.
        value = rng.choice(HOSTILE)
        if rng.random() < 0.5:
            path, _ = rng.choice(mappings)
            data = fresh()
            target = data
            for part in path:
                target = target[part]
            target[value] = 1
            return dump(data), strict
        path, _ = rng.choice(everything)
        return dump(replace_at(fresh(), path, value)), False

    def truncate() -> tuple[bytes, bool]:
        return original[: rng.randrange(len(original))], False

    def break_syntax() -> tuple[bytes, bool]:
        lines = text.splitlines(keepends=True)
        at = rng.randrange(len(lines) + 1)
        return "".join([*lines[:at], rng.choice(SYNTAX_BREAKS), *lines[at:]]).encode(), False

    def non_utf8() -> tuple[bytes, bool]:
        at = rng.randrange(len(original) + 1)
        return original[:at] + rng.choice(BAD_BYTES) + original[at:], True

    def wrong_top_level() -> tuple[bytes, bool]:
        return rng.choice(
            [b"", b"# only a comment\n", b"- a\n- b\n", b"just text\n", b"42\n"]
        ), strict

    mutations: list[Callable[[], tuple[bytes, bool]]] = [
        delete_key, retype, retype_top, unknown_key, impossible_date, out_of_range, wrong_id,
        duplicate_item, hostile_text, truncate, break_syntax, non_utf8, wrong_top_level,
    ]  # fmt: skip
    variants = []
    for i in range(VARIANTS_PER_FILE):
        mutation = mutations[i % len(mutations)]
        content, invalid = mutation()
        variants.append(Variant(name, mutation.__name__, content, invalid))
    return variants


# A regional holiday, as an administrator adds one: the shipped file holds no events.
REGION_DAY = (
    "BEGIN:VEVENT\nUID:region-day-2027@example\nDTSTART;VALUE=DATE:20270914\n"
    "SUMMARY:День области\nEND:VEVENT\n"
)


def ical_variants(rng: random.Random, name: str, original: bytes) -> list[Variant]:
    text = original.decode()
    if not re.search(r"(?m)^BEGIN:VEVENT", text):
        text = re.sub(r"(?m)^END:VCALENDAR", REGION_DAY + "END:VCALENDAR", text, count=1)
        original = text.encode()
    # Properties at the start of a line: a description may quote them.
    dates = re.findall(r"(?m)^DTSTART;VALUE=DATE:(\d{8})", text)
    changes: list[tuple[str, bytes, bool]] = []
    for i in range(VARIANTS_PER_FILE):
        choice = i % 6
        if choice == 0:
            bad = rng.choice(["20260230", "20261131", "20271301", "2026011", "tomorrow"])
            changes.append(
                (
                    "impossible_date",
                    re.sub(
                        rf"(?m)^(DTSTART;VALUE=DATE:){rng.choice(dates)}",
                        rf"\g<1>{bad}",
                        text,
                        count=1,
                    ).encode(),
                    True,
                )
            )
        elif choice == 1:
            changes.append(("truncate", original[: rng.randrange(len(original))], False))
        elif choice == 2:
            at = rng.randrange(len(original) + 1)
            changes.append(
                ("non_utf8", original[:at] + rng.choice(BAD_BYTES) + original[at:], True)
            )
        elif choice == 3:
            broken = (
                re.sub(r"(?m)^END:VEVENT", "", text, count=1)
                if rng.random() < 0.5
                else text.replace("BEGIN:VCALENDAR", "", 1)
            )
            changes.append(("structure", broken.encode(), False))
        elif choice == 4:
            extra = rng.choice(
                [
                    "RRULE:FREQ=YEARLY",
                    "DTEND;VALUE=DATE:20200101",
                    "DTSTART:20260101T090000Z",
                    "DTEND;VALUE=DATE:29991231",
                ]
            )
            changes.append(
                (
                    "property",
                    re.sub(r"(?m)^END:VEVENT", f"{extra}\nEND:VEVENT", text, count=1).encode(),
                    True,
                )
            )
        else:
            changes.append(("empty", rng.choice([b"", b"\n", b"garbage\n"]), True))
    return [Variant(name, kind, content, invalid) for kind, content, invalid in changes]


def binary_variants(
    rng: random.Random, name: str, original: bytes, required: bool
) -> list[Variant]:
    """`required`: a playbook's model must load; the organisation's own is skipped with a
    warning when it cannot be read."""
    variants = [Variant(name, "missing", None, False), Variant(name, "empty", b"", required)]
    for _ in range(6):
        cut = original[: rng.randrange(len(original))]
        variants.append(Variant(name, "truncate", cut, required))
    for _ in range(4):
        damaged = bytearray(original)
        for _ in range(8):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        variants.append(Variant(name, "flip_bytes", bytes(damaged), False))
    return variants


def all_variants(setup: Path) -> list[Variant]:
    rng = random.Random(SEED)
    variants: list[Variant] = []
    for file in sorted(setup.rglob("*")):
        if not file.is_file() or file.name == "o.db":
            continue
        name = file.relative_to(setup).as_posix()
        original = file.read_bytes()
        if file.suffix == ".yaml":
            strict = "/lexicon/" not in f"/{name}"
            variants += yaml_variants(rng, name, original, strict)
        elif file.suffix == ".ics":
            variants += ical_variants(rng, name, original)
        elif file.suffix == ".npz":
            variants += binary_variants(rng, name, original, name.startswith("playbook/"))
    return variants


# --- the test ---------------------------------------------------------------------------------

PROBLEM_LINE = re.compile(r"^(?P<file>/\S+?):(?: (?P<field>.+?):)? \S")


# Some 250 whole check-config runs (500 with OTKLIK_FUZZ_VARIANTS=28), CPU-bound: on a loaded
# 2-core machine (the other xdist worker busy beside it) they may outlast the suite's 120 s.
@pytest.mark.timeout(300)
def test_check_config_never_crashes_on_broken_settings(setup: Path) -> None:
    assert check(setup).exit_code == 0  # the unbroken setup is valid
    variants = all_variants(setup)
    assert len(variants) >= 16 * VARIANTS_PER_FILE
    crashes: list[str] = []
    outcome: Counter[str] = Counter()
    by_kind: Counter[tuple[str, int]] = Counter()
    named_the_file = 0
    invalid_accepted: list[str] = []
    for variant in variants:
        file = setup / variant.file
        original = file.read_bytes()
        if variant.content is None:
            file.unlink()
        else:
            file.write_bytes(variant.content)
        try:
            result = check(setup)
        finally:
            file.write_bytes(original)
        output = result.output
        escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
        if result.exit_code not in (0, 2) or escaped or "Traceback" in output:
            crashes.append(
                f"{variant}: exit {result.exit_code}, {result.exception!r}\n{output[-600:]}"
            )
            continue
        outcome["rejected" if result.exit_code == 2 else "accepted"] += 1
        by_kind[variant.kind, result.exit_code] += 1
        if result.exit_code == 0:
            if variant.certainly_invalid:
                invalid_accepted.append(str(variant))
            continue
        problems = output.split("Configuration is not valid\n", 1)[-1].splitlines()
        lines = [PROBLEM_LINE.match(line) for line in problems if line.strip()]
        # Every problem is one line that starts with the file it is in.
        assert lines and all(lines), f"{variant}:\n{output}"
        named_the_file += any(m and m["file"].endswith(Path(variant.file).name) for m in lines)

    assert not crashes, f"{len(crashes)} of {len(variants)} variants crashed:\n" + "\n".join(
        crashes[:5]
    )
    rejected, accepted = outcome["rejected"], outcome["accepted"]
    log.info("%d variants: %d rejected, %d accepted", len(variants), rejected, accepted)
    log.info(", ".join(f"{kind} exit {code}: {n}" for (kind, code), n in sorted(by_kind.items())))
    # Changes that cannot be valid are all refused.
    assert not invalid_accepted, invalid_accepted
    # Most changes break something; the rest (a deleted key with a default, a date moved, a
    # file whose damaged bytes were not read) may well be valid.
    assert outcome["rejected"] >= 0.75 * len(variants)
    # A problem caused in one file may surface in another (a template deleted: crisis.yaml
    # names it); mostly the changed file is named.
    assert named_the_file >= 0.9 * outcome["rejected"]
