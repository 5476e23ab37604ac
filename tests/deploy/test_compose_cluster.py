"""deploy/compose.cluster.yaml, several instances behind nginx (README, "Running several
instances"): `docker compose config` accepts it where Docker's compose is installed, and its
shape is checked everywhere: PostgreSQL, a migration before any instance, two instances of one
image and config with distinct names, health checks on /healthz, and a TLS proxy that spreads
the webhook (/telegram/) and the API over both."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.doubles.support import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.cluster.yaml"
NGINX = DEPLOY / "nginx.cluster.conf"
INSTANCES = ("otklik-1", "otklik-2")


def _compose_skip_reason() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        said = (probe.stderr or probe.stdout).strip().splitlines()
        return f"docker has no compose plugin: {said[0] if said else probe.returncode}"
    return None


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    return services


def _probes_healthz(service: dict[str, Any]) -> bool:
    test = service.get("healthcheck", {}).get("test", [])
    return any("/healthz" in part for part in test)


def test_two_instances_of_one_image_and_config_with_distinct_names() -> None:
    services = _services()
    assert {"postgres", "migrate", "proxy", *INSTANCES} <= set(services)
    names = [services[name]["environment"]["OTKLIK_INSTANCE_NAME"] for name in INSTANCES]
    assert len(set(names)) == len(names)
    for name in INSTANCES:
        instance = services[name]
        assert instance["image"] == services["migrate"]["image"]
        assert "./config.yaml:/etc/otklik/config.yaml:ro" in instance["volumes"]
        assert "postgresql+asyncpg://" in instance["environment"]["OTKLIK_DATABASE_URL"]
        assert instance["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert _probes_healthz(instance)
        assert "ports" not in instance  # only the proxy is published
    assert services["migrate"]["command"][:3] == ["otklik", "db", "upgrade"]
    assert _probes_healthz(services["proxy"])


def test_the_proxy_ends_tls_and_spreads_webhook_and_api_over_both_instances() -> None:
    proxy = _services()["proxy"]
    assert {"80:80", "443:443"} <= set(proxy["ports"])
    assert "./nginx.cluster.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    conf = NGINX.read_text(encoding="utf-8")
    upstream = re.search(r"upstream otklik_instances \{(.*?)\}", conf, re.S)
    assert upstream is not None
    assert all(f"server {name}:8080" in upstream.group(1) for name in INSTANCES)
    assert "listen 443 ssl;" in conf and "ssl_certificate " in conf
    for location in ("/telegram/", "/api/v1/", "= /healthz"):
        block = re.search(rf"location {re.escape(location)} \{{(.*?)\}}", conf, re.S)
        assert block is not None, location
        assert "proxy_pass http://otklik_instances;" in block.group(1)
    assert "/metrics" not in re.findall(r"location ([^{]+)\{", conf)


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    reason = _compose_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy)
    # What the README has the operator make: the env file and the config it mounts.
    env = (DEPLOY / "otklik.env.example").read_text(encoding="utf-8")
    (deploy / ".env").write_text(
        env.replace("OTKLIK_DB_PASSWORD=", "OTKLIK_DB_PASSWORD=0123abcd"), encoding="utf-8"
    )
    (deploy / "config.yaml").write_text("", encoding="utf-8")
    result = subprocess.run(
        [
            "docker",
            "compose",
            "-f",
            str(deploy / "compose.cluster.yaml"),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    assert {resolved[name]["environment"]["OTKLIK_INSTANCE_NAME"] for name in INSTANCES} == set(
        INSTANCES
    )
