"""A real Synapse homeserver on 127.0.0.1 for the Matrix tests (synchronous, no event loop)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

SERVER_NAME = "otklik.test"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.1

# Generous enough that no test trips a limiter by accident; a test that wants
# M_LIMIT_EXCEEDED starts its own server with low values via `overrides`.
_NO_LIMIT: dict[str, float] = {"per_second": 1000, "burst_count": 1000}
RATE_LIMITS: dict[str, Any] = {
    "rc_message": _NO_LIMIT,
    "rc_registration": _NO_LIMIT,
    "rc_registration_token_validity": _NO_LIMIT,
    "rc_login": {"address": _NO_LIMIT, "account": _NO_LIMIT, "failed_attempts": _NO_LIMIT},
    "rc_joins": {"local": _NO_LIMIT, "remote": _NO_LIMIT},
    "rc_joins_per_room": _NO_LIMIT,
    # Synapse 1.163 calls the third key `per_issuer` (not `per_sender`).
    "rc_invites": {"per_room": _NO_LIMIT, "per_user": _NO_LIMIT, "per_issuer": _NO_LIMIT},
    "rc_third_party_invite": _NO_LIMIT,
    "rc_admin_redaction": _NO_LIMIT,
    "rc_3pid_validation": _NO_LIMIT,
    "rc_room_creation": _NO_LIMIT,
    "rc_reports": _NO_LIMIT,
    "rc_presence": {"per_user": _NO_LIMIT},
    "rc_delayed_event_mgmt": _NO_LIMIT,
    "rc_media_create": _NO_LIMIT,
    "rc_user_directory": _NO_LIMIT,
    "rc_profile": _NO_LIMIT,
    "rc_key_requests": _NO_LIMIT,
}

# Never route loopback requests through an HTTP proxy taken from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SynapseError(RuntimeError):
    """Synapse failed to start, or answered a helper request with an error."""


class MatrixHTTPError(SynapseError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class MatrixUser:
    user_id: str
    access_token: str
    device_id: str
    password: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `overrides` into a copy of `base`; nested dicts merge, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class SynapseServer:
    """One Synapse process with a generated config and its SQLite database in `workdir`."""

    def __init__(self, workdir: Path, overrides: Mapping[str, Any] | None = None) -> None:
        self.workdir = Path(workdir)
        self.overrides: dict[str, Any] = dict(overrides or {})
        self.server_name = SERVER_NAME
        self.port = 0
        self.started_in_s: float | None = None
        self.config_path = self.workdir / "homeserver.yaml"
        self.log_path = self.workdir / "homeserver.log"
        self.stdio_path = self.workdir / "stdio.log"
        # Fixed per object so a restart keeps the same secrets (and valid cookies/macaroons).
        self._shared_secret = secrets.token_hex(32)
        self._macaroon_secret = secrets.token_hex(32)
        self._form_secret = secrets.token_hex(32)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- configuration -------------------------------------------------------------------------

    def build_config(self) -> dict[str, Any]:
        work = self.workdir
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": f"{self.base_url}/",
            "pid_file": str(work / "homeserver.pid"),
            # Only the client (+admin) resource: no federation listener at all.
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(work / "homeserver.db")}},
            "log_config": str(work / "log_config.yaml"),
            "media_store_path": str(work / "media_store"),
            "signing_key_path": str(work / "signing.key"),
            "registration_shared_secret": self._shared_secret,
            "macaroon_secret_key": self._macaroon_secret,
            "form_secret": self._form_secret,
            "enable_registration": False,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "enable_metrics": False,
            "experimental_features": {},
            # The default 12 rounds cost ~0.22 s of CPU per register/login on this machine.
            "bcrypt_rounds": 4,
            **copy.deepcopy(RATE_LIMITS),
        }
        return deep_merge(config, self.overrides)

    def _write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "media_store").mkdir(exist_ok=True)
        log_config = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(self.log_path),
                    "formatter": "plain",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
        }
        (self.workdir / "log_config.yaml").write_text(yaml.safe_dump(log_config))
        key_path = self.workdir / "signing.key"
        if not key_path.exists():
            # In-process generation: no extra Synapse start-up just to make a key.
            from signedjson.key import generate_signing_key, write_signing_keys

            with key_path.open("w") as fh:
                write_signing_keys(fh, [generate_signing_key("a_" + secrets.token_hex(2))])
        self.config_path.write_text(yaml.safe_dump(self.build_config(), sort_keys=False))

    # -- process -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        started = time.monotonic()
        # The free port may be taken between probing and binding: retry a couple of times.
        for attempt in range(3):
            self.port = free_port()
            self._write_files()
            try:
                self._spawn_and_wait()
                break
            except SynapseError as exc:
                if attempt == 2 or "Address already in use" not in str(exc):
                    raise
        self.started_in_s = round(time.monotonic() - started, 3)

    def _spawn_and_wait(self) -> None:
        with self.stdio_path.open("ab") as stdio:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=stdio,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise SynapseError(f"Synapse exited with code {code}:\n{self._log_tails()}")
            if self._healthy():
                return
            time.sleep(POLL_INTERVAL_S)
        self.stop()
        raise SynapseError(f"Synapse not healthy after {START_TIMEOUT_S}s:\n{self._log_tails()}")

    def _healthy(self) -> bool:
        try:
            with _OPENER.open(f"{self.base_url}/health", timeout=1) as resp:
                return bool(resp.status == 200 and resp.read() == b"OK")
        except OSError:
            return False

    def _log_tails(self) -> str:
        return (
            f"--- {self.stdio_path.name} ---\n{_tail(self.stdio_path)}\n"
            f"--- {self.log_path.name} ---\n{_tail(self.log_path)}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- HTTP helpers for fixture set-up -------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """A JSON request to this server; raises MatrixHTTPError on a non-2xx answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            raise MatrixHTTPError(
                method, path, exc.code, exc.read().decode(errors="replace")
            ) from None
        result: dict[str, Any] = json.loads(payload) if payload else {}
        return result

    def register(
        self, localpart: str, password: str | None = None, admin: bool = False
    ) -> MatrixUser:
        password = password or secrets.token_urlsafe(16)
        path = "/_synapse/admin/v1/register"
        nonce = self.request("GET", path)["nonce"]
        mac = hmac.new(self._shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode()]))
        mac.update(b"\x00admin" if admin else b"\x00notadmin")
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        reply = self.request("POST", path, body=body)
        return MatrixUser(reply["user_id"], reply["access_token"], reply["device_id"], password)

    def create_room(
        self,
        token: str,
        name: str,
        *,
        invite: Iterable[str] = (),
        room_version: str | None = None,
        encrypted: bool = False,
        preset: str = "private_chat",
    ) -> str:
        body: dict[str, Any] = {"name": name, "preset": preset, "invite": list(invite)}
        if room_version is not None:
            body["room_version"] = room_version
        if encrypted:
            body["initial_state"] = [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ]
        room_id: str = self.request(
            "POST", "/_matrix/client/v3/createRoom", token=token, body=body
        )["room_id"]
        return room_id

    def add_alias(self, token: str, alias: str, room_id: str) -> None:
        """Point a room alias ("#name:otklik.test") at the room."""
        path = f"/_matrix/client/v3/directory/room/{_q(alias)}"
        self.request("PUT", path, token=token, body={"room_id": room_id})

    def join(self, token: str, room_id: str) -> None:
        self.request("POST", f"/_matrix/client/v3/join/{_q(room_id)}", token=token, body={})

    def invite(self, token: str, room_id: str, user_id: str) -> None:
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/invite"
        self.request("POST", path, token=token, body={"user_id": user_id})

    def send_text(self, token: str, room_id: str, text: str) -> str:
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/send/m.room.message/{uuid.uuid4().hex}"
        body = {"msgtype": "m.text", "body": text}
        event_id: str = self.request("PUT", path, token=token, body=body)["event_id"]
        return event_id


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")
