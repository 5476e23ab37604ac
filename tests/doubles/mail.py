"""Real mail servers on 127.0.0.1 for the e-mail tests: pymap (IMAP, in-memory dict backend,
with IDLE), one process per mailbox, and aiosmtpd (SMTP, with AUTH) that delivers each letter
into the recipient's mailbox with IMAP APPEND. So "sent to the watched mailbox through SMTP"
is what happens, and a citizen's mailbox is read back over IMAP."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import aioimaplib
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

PYMAP = Path(sys.executable).parent / "pymap"
_LITERAL_UID = re.compile(rb"UID (\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    """One IMAP account on its own pymap server."""

    address: str
    user: str
    password: str
    port: int
    process: subprocess.Popen[bytes] | None = None

    async def client(self) -> aioimaplib.IMAP4:
        client = aioimaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        await client.wait_hello_from_server()
        assert (await client.login(self.user, self.password)).result == "OK"
        return client

    async def append(self, raw: bytes, folder: str = "INBOX") -> None:
        client = await self.client()
        try:
            response = await client.append(raw, mailbox=folder)
            assert response.result == "OK", response
        finally:
            await client.logout()

    async def letters(self, folder: str = "INBOX") -> list[tuple[EmailMessage, str]]:
        """Every letter in the folder with its flags, oldest first (read without \\Seen)."""
        client = await self.client()
        try:
            if (await client.select(folder)).result != "OK":
                return []
            found = await client.uid_search("ALL")
            uids = [u for line in found.lines[:-1] for u in bytes(line).split() if u.isdigit()]
            result = []
            for uid in uids:
                fetched = await client.uid("fetch", uid.decode(), "(FLAGS BODY.PEEK[])")
                raw = next(bytes(x) for x in fetched.lines if isinstance(x, bytearray))
                flags = bytes(fetched.lines[0]).decode(errors="replace")
                message = BytesParser(policy=policy.default).parsebytes(raw)
                assert isinstance(message, EmailMessage)
                result.append((message, flags))
            return result
        finally:
            await client.logout()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_mailbox(address: str, user: str, password: str) -> Mailbox:
    port = free_port()
    process = subprocess.Popen(
        [
            str(PYMAP),
            "--no-service",
            "admin",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-tls",
            "dict",
            "--demo-user",
            user,
            "--demo-password",
            password,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return Mailbox(address, user, password, port, process)
        time.sleep(0.05)
    process.terminate()
    raise RuntimeError("pymap did not start")


@dataclass
class Relay:
    """aiosmtpd's handler: every accepted letter is APPENDed to its recipients' mailboxes."""

    mailboxes: dict[str, Mailbox]
    accepted: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        for recipient in envelope.rcpt_tos:
            mailbox = self.mailboxes.get(recipient.lower())
            if mailbox is None:
                return "550 5.1.1 no such mailbox"
        for recipient in envelope.rcpt_tos:
            await self.mailboxes[recipient.lower()].append(raw)
        self.accepted.append(raw)
        return "250 2.0.0 delivered"


@dataclass
class MailWorld:
    organisation: Mailbox
    citizen: Mailbox
    smtp_port: int
    relay: Relay

    def config(self) -> str:
        """The `email:` section for the bot, as YAML."""
        org = self.organisation
        return (
            "email:\n"
            "  imap_host: 127.0.0.1\n"
            f"  imap_port: {org.port}\n"
            "  imap_tls: none\n"
            "  smtp_host: 127.0.0.1\n"
            f"  smtp_port: {self.smtp_port}\n"
            "  smtp_tls: none\n"
            f"  user: {org.user}\n"
            f"  password: {org.password}\n"
            f"  from_address: {org.address}\n"
            "  from_name: Администрация Энской области\n"
            "  max_letter_mb: 5\n"
            "  poll_interval_s: 0.2\n"
        )

    async def send(self, letter: EmailMessage) -> None:
        """A citizen's letter, through the SMTP server like any mail client's."""
        import aiosmtplib

        await aiosmtplib.send(
            letter,
            hostname="127.0.0.1",
            port=self.smtp_port,
            username=self.citizen.user,
            password=self.citizen.password,
            timeout=60,
        )


def _authenticator(accounts: dict[str, str]) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            return AuthResult(success=accounts.get(user) == password)
        return AuthResult(success=False)

    return check


@contextlib.asynccontextmanager
async def mail_world() -> AsyncIterator[MailWorld]:
    organisation = start_mailbox("obrashcheniya@city.example", "otklik", "org-secret-1")
    citizen = start_mailbox("petr@mail.example", "petr", "citizen-secret-1")
    relay = Relay({organisation.address: organisation, citizen.address: citizen})
    port = free_port()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AUTH without TLS: it is 127.0.0.1
        controller = Controller(
            relay,
            hostname="127.0.0.1",
            port=port,
            authenticator=_authenticator(
                {organisation.user: organisation.password, citizen.user: citizen.password}
            ),
            auth_require_tls=False,
            data_size_limit=64 * 1024 * 1024,
        )
        controller.start()
    try:
        yield MailWorld(organisation, citizen, port, relay)
    finally:
        controller.stop()
        organisation.stop()
        citizen.stop()
        await asyncio.sleep(0)
