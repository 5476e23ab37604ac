"""The domain core (bot/) knows no transport and no SQL.

Modules are discovered, never listed: new files under bot/ are checked as soon as they appear.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"

FORBIDDEN = frozenset(
    {
        "aiogram",
        "nio",
        "sqlalchemy",
        "apscheduler",
        "aiohttp",
        "asyncpg",
        "aiosqlite",
        "alembic",
        "store",
        "handlers",
        "telegram",
        "matplotlib",
    }
)
_DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__"})


def forbidden_imports(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, module) for every import of a forbidden top-level package in the source.

    Covers `import x`, `import x.y as z`, `from x.y import z` (absolute only: a relative
    import stays inside bot/), and `importlib.import_module("x")` / `__import__("x")` with a
    literal name.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names = [node.module]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (
                called in _DYNAMIC_IMPORTERS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                found.append((node.lineno, name))
    return sorted(found)


def _bot_sources() -> list[Path]:
    return sorted(p for p in BOT.rglob("*.py") if "__pycache__" not in p.parts)


def test_bot_sources_are_discovered() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _bot_sources()}
    assert {
        "bot/__init__.py",
        "bot/model.py",
        "bot/staff/rights.py",
        "bot/cases/lifecycle.py",
    } <= names


@pytest.mark.parametrize(
    "source",
    [
        "import aiogram",
        "import sqlalchemy.orm as orm",
        "from nio import AsyncClient",
        "from store.repo import CaseRepo",
        "import os, handlers.telegram",
        "def f():\n    from apscheduler.schedulers.asyncio import AsyncIOScheduler",
        "try:\n    import matplotlib\nexcept ImportError:\n    pass",
        "import importlib\nimportlib.import_module('aiohttp.web')",
        "__import__('asyncpg')",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from alembic import op",
    ],
)
def test_scanner_catches_forbidden_imports(source: str) -> None:
    assert forbidden_imports(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import os\nfrom datetime import UTC",
        "from bot.model import Case",
        "from . import store",  # bot.store, a module of the core itself
        "from .handlers import x",
        "import storage\nimport telegramify\nimport niobium",  # prefixes are not matches
        "x = 'import aiogram'",
    ],
)
def test_scanner_allows_clean_imports(source: str) -> None:
    assert forbidden_imports(source) == []


def test_bot_imports_no_transport_and_no_sql() -> None:
    offences = []
    for path in _bot_sources():
        rel = path.relative_to(ROOT).as_posix()
        for line, module in forbidden_imports(path.read_text(encoding="utf-8"), rel):
            offences.append(f"{rel}:{line}: imports {module}")
    assert not offences, "bot/ must stay free of transports and SQL:\n" + "\n".join(offences)


_PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, traceback

    import bot

    imported, errors = [], []

    def on_error(name):
        errors.append(f"{name}: {traceback.format_exc(limit=3)}")

    for info in pkgutil.walk_packages(bot.__path__, "bot.", onerror=on_error):
        try:
            importlib.import_module(info.name)
            imported.append(info.name)
        except BaseException:
            errors.append(f"{info.name}: {traceback.format_exc(limit=3)}")

    forbidden = set(json.loads(sys.argv[1]))
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    print(json.dumps({
        "bot_file": bot.__file__,
        "imported": imported,
        "errors": errors,
        "loaded": loaded,
    }))
    """
)


def test_importing_every_bot_module_loads_no_transport_and_no_sql() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(sorted(FORBIDDEN))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert Path(report["bot_file"]).resolve().parent == BOT, "imported someone else's bot/"
    assert not report["errors"], "bot modules failed to import:\n" + "\n".join(report["errors"])

    # Every file under bot/ was actually imported (discovery did not silently skip any).
    expected = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in _bot_sources()
    }
    assert expected - {"bot"} <= set(report["imported"])
    assert {"bot.model", "bot.staff.rights", "bot.cases.lifecycle"} <= set(report["imported"])

    assert report["loaded"] == [], (
        "importing bot/ pulled in transport or SQL modules: " + ", ".join(report["loaded"])
    )
