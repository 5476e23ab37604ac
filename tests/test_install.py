"""`pip install otklik` (no extras) installs no development package: the base dependencies'
requirements, walked through the installed packages' metadata, reach none of the `dev`
extra's packages (nor what only they need). scripts/check-install.sh does it for real, in a
fresh virtual environment, and scripts/check-systemd.sh in the systemd install's venv."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

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


def _check_installed(tmp_path: Path, freeze: str) -> subprocess.CompletedProcess[str]:
    listing = tmp_path / "installed.txt"
    listing.write_text(freeze, encoding="utf-8")
    script = ROOT / "scripts" / "no-dev-packages.py"
    return subprocess.run(
        [sys.executable, str(script), str(ROOT / "pyproject.toml"), str(listing)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_installed_set_check_passes_the_bot_and_rejects_development_packages(
    tmp_path: Path,
) -> None:
    """scripts/no-dev-packages.py, which check-install.sh and check-systemd.sh run on the venv."""
    base = "otklik==0.1.0\naiogram==3.31.0\nSQLAlchemy==2.0.58\n"
    assert _check_installed(tmp_path, base).returncode == 0
    failed = _check_installed(tmp_path, base + "Matrix_Synapse==1.120.0\npytest==8.3.0\n")
    assert failed.returncode != 0
    assert "matrix-synapse, pytest" in failed.stderr
