"""What several benchmarks share: a free port and the shipped example config made runnable
in a scratch directory."""

from __future__ import annotations

import socket
from pathlib import Path

from bot.settings.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def example_config(
    directory: Path, port: int, api_token: str, database_url: str | None = None
) -> Config:
    """The shipped example (every department the default playbook routes to) with its
    database in `directory` (or at `database_url`), the API on `port` and the monitoring
    source's token."""
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    text = text.replace("path: playbooks/default", f"path: {ROOT}/playbooks/default")
    text = text.replace("templates: playbooks/templates", f"templates: {ROOT}/playbooks/templates")
    text = text.replace(
        "sqlite+aiosqlite:///data/otklik.db",
        database_url or f"sqlite+aiosqlite:///{directory}/otklik.db",
    )
    text = text.replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}")
    text = text.replace("log_level: INFO", "log_level: WARNING")
    path = directory / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={"OTKLIK_API_TOKEN_MONITORING": api_token})
