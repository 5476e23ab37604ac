"""deploy/compose.cluster.yaml, several instances behind nginx (README, "Running several
instances"): `docker compose config` accepts it where Docker's compose is installed, and its
shape is checked everywhere: PostgreSQL, a migration before any instance, two instances of one
image and config with distinct names, health checks on /healthz, and a TLS proxy that spreads
the webhook (/telegram/) and the API over both."""

from __future__ import annotations

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


def _compose() -> list[str] | str:
    """The command that runs Compose: Docker's plugin (`docker compose`), else Debian's
    `docker-compose` (1.29, which .ci/run installs); or why neither is there."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    said = (probe.stderr or probe.stdout).strip().splitlines()
    return f"docker has no compose plugin and docker-compose is absent: {said[0] if said else ''}"


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
    compose = _compose()
    if isinstance(compose, str):
        pytest.skip(compose)
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy)
    # What the README has the operator make: the env file and the config it mounts.
    env = (DEPLOY / "otklik.env.example").read_text(encoding="utf-8")
    (deploy / ".env").write_text(
        env.replace("OTKLIK_DB_PASSWORD=", "OTKLIK_DB_PASSWORD=0123abcd"), encoding="utf-8"
    )
    (deploy / "config.yaml").write_text("", encoding="utf-8")
    file = deploy / "compose.cluster.yaml"
    if compose == ["docker-compose"]:
        # 1.29 knows all of the file but its top-level project name: given as -p instead.
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
        compose = [*compose, "-p", spec.pop("name")]
        file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = subprocess.run(
        [*compose, "-f", str(file), "config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert {resolved[name]["environment"]["OTKLIK_INSTANCE_NAME"] for name in INSTANCES} == set(
        INSTANCES
    )
