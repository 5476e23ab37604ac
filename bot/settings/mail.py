"""The config's `email:` section: the mailbox citizens write to (read over IMAP) and the
server answers leave through (SMTP). Checked once here; handlers/email uses it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from bot.settings.errors import FieldProblems
from bot.settings.fields import StrictModel

__all__ = ["EmailConfig", "TlsMode"]

# ssl: TLS from the first byte (IMAPS 993, SMTPS 465); starttls: plain, then STARTTLS
# (IMAP 143, submission 587); none: no encryption, only for a server on the same host.
TlsMode = Literal["ssl", "starttls", "none"]
_ADDRESS_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
_PLACEHOLDERS = frozenset({"changeme", "change-me", "password", "secret", "xxx"})


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


Host = Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=253)]
Port = Annotated[int, Field(gt=0, lt=65536)]


class EmailConfig(StrictModel):
    """A mailbox of the organisation: its new letters become mentions; approved answers to
    them go back as replies from `from_address`."""

    imap_host: Host
    imap_port: Port = 993
    imap_tls: TlsMode = "ssl"
    smtp_host: Host
    smtp_port: Port = 465
    smtp_tls: TlsMode = "ssl"
    user: Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=320)]
    # Write `password: ${OTKLIK_EMAIL_PASSWORD:-}`: it comes from the environment; empty
    # turns the e-mail channel off.
    password: Annotated[str, Field(max_length=1024)] = ""
    mailbox: Annotated[str, Field(min_length=1, max_length=255)] = "INBOX"
    # Where a copy of every answer is filed; it is also how a restart tells an answer that
    # went out from one that did not (handlers/email/transport.py).
    sent_mailbox: Annotated[str, Field(min_length=1, max_length=255)] = "Sent"
    from_address: Annotated[str, BeforeValidator(_strip)]
    from_name: Annotated[str, Field(max_length=256)] = ""
    max_letter_mb: Annotated[float, Field(gt=0, le=50)] = 10.0
    store_attachments: Literal[False] = False  # listed on the card by name and size only
    # IDLE where the server has it; false polls every poll_interval_s anyway (for a proxy or
    # server that drops idle connections).
    idle: bool = True
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 60.0  # without IDLE
    idle_timeout_s: Annotated[float, Field(gt=0, le=1740)] = 600.0  # RFC 2177: < 29 min

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _ADDRESS_RE.match(value):
            raise ValueError("is not an e-mail address (name@example.org)")
        return value

    @field_validator("password")
    @classmethod
    def _not_placeholder(cls, value: str) -> str:
        if value and value.strip().lower() in _PLACEHOLDERS:
            raise ValueError("is a placeholder: put the real password in the environment")
        return value

    @model_validator(mode="after")
    def _tls_matches_ports(self) -> Self:
        # The usual mistake: implicit TLS on a STARTTLS port (or back) hangs at connect.
        problems = []
        for field, mode, port, implicit, explicit in (
            ("imap_tls", self.imap_tls, self.imap_port, 993, 143),
            ("smtp_tls", self.smtp_tls, self.smtp_port, 465, 587),
        ):
            if mode == "ssl" and port == explicit:
                problems.append((field, f"ssl on port {port}: that port speaks starttls"))
            if mode == "starttls" and port == implicit:
                problems.append((field, f"starttls on port {port}: that port speaks ssl"))
        if problems:
            raise FieldProblems(problems)
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.password)

    @property
    def max_letter_bytes(self) -> int:
        return int(self.max_letter_mb * 1024 * 1024)

    @property
    def domain(self) -> str:
        """The part of Message-IDs after "@": the organisation's own mail domain."""
        return self.from_address.rsplit("@", 1)[1].lower()
