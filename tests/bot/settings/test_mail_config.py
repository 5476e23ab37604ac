"""The `email:` section: checked once, with the mistakes an operator makes named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.settings.mail import EmailConfig

BASE: dict[str, Any] = {
    "imap_host": "mail.example.org",
    "smtp_host": "mail.example.org",
    "user": "appeals@example.org",
    "password": "s3cret-from-env",
    "from_address": "appeals@example.org",
}


def test_defaults_are_implicit_tls_and_a_bounded_letter() -> None:
    config = EmailConfig.model_validate(BASE)
    assert (config.imap_port, config.imap_tls, config.smtp_port, config.smtp_tls) == (
        993,
        "ssl",
        465,
        "ssl",
    )
    assert config.enabled and config.domain == "example.org"
    assert config.max_letter_bytes == 10 * 1024 * 1024 and config.mailbox == "INBOX"


def test_an_empty_password_turns_e_mail_off() -> None:
    assert not EmailConfig.model_validate({**BASE, "password": ""}).enabled


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"imap_tls": "ssl", "imap_port": 143}, "imap_tls"),
        ({"smtp_tls": "starttls", "smtp_port": 465}, "smtp_tls"),
        ({"smtp_tls": "tls"}, "smtp_tls"),
        ({"from_address": "not an address"}, "from_address"),
        ({"password": "changeme"}, "password"),
        ({"max_letter_mb": 0}, "max_letter_mb"),
        ({"store_attachments": True}, "store_attachments"),
        ({"imap_hots": "typo"}, "imap_hots"),
    ],
)
def test_mistakes_are_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        EmailConfig.model_validate({**BASE, **change})
    assert field in str(error.value)
