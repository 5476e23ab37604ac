"""`pip install otklik` (no extras) installs no development package: the base dependencies'
requirements, walked through the installed packages' metadata, reach none of the `dev`
extra's packages (nor what only they need). scripts/check-install.sh does it for real, in a
fresh virtual environment."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement

from tests.doubles.support import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# What the development tools bring with them and the bot never needs.
DEV_ONLY = {"twisted", "pytest", "hypothesis", "mypy", "ruff", "playwright", "schemathesis"}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _reachable(requirements: list[str]) -> set[str]:
    """Every distribution the requirements pull in, by the metadata of the installed ones."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = _name(requirement.name)
        wanted = [(name, e) for e in ("", *sorted(requirement.extras))]
        if all(key in seen for key in (f"{n}[{e}]" for n, e in wanted)):
            continue
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not for this platform or Python (markers), or optional
        for package, each in wanted:
            seen.add(f"{package}[{each}]")
            todo += [(Requirement(r), each) for r in requires]
    return {key.split("[")[0] for key in seen}


def test_the_base_install_reaches_no_development_package() -> None:
    base = PYPROJECT["project"]["dependencies"]
    dev = {_name(Requirement(r).name) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    reachable = _reachable(base)
    assert {"aiogram", "sqlalchemy", "aiosqlite", "greenlet", "cryptography"} <= reachable
    assert "scikit-learn" in reachable  # the nightly retrain (model.retrain_cron) trains with it
    assert reachable & dev == set()
    assert reachable & DEV_ONLY == set()
    # The walk itself reaches them from the dev extra: the check could see them.
    assert _reachable(PYPROJECT["project"]["optional-dependencies"]["dev"]) >= DEV_ONLY
