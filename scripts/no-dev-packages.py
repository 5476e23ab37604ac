"""Fails when a `pip freeze` listing holds a development package: one of pyproject's `dev`
extra, or what the development tools bring along. Used by check-install.sh and
check-systemd.sh.
    python3 scripts/no-dev-packages.py pyproject.toml installed.txt"""

import re
import sys
import tomllib

# What the dev tools bring with them and the bot never needs (tests/test_install.py: DEV_ONLY).
DEV_ONLY = {"twisted", "pytest", "hypothesis", "mypy", "ruff", "playwright", "schemathesis"}


def name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;@]", text.strip(), maxsplit=1)[0]).lower()


def main(pyproject: str, freeze: str) -> None:
    with open(pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    dev = {name(r) for r in project["optional-dependencies"]["dev"]} | DEV_ONLY
    with open(freeze, encoding="utf-8") as file:
        installed = {name(line) for line in file if line.strip() and not line.startswith("#")}
    sys.stdout.write(f"{len(installed)} distributions installed\n")
    found = sorted(installed & dev)
    if found:
        sys.exit(f"FAIL: development packages installed: {', '.join(found)}")
    sys.stdout.write(f"none of: {', '.join(sorted(dev))}\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
