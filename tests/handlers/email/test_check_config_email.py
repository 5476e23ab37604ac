"""check-config knows the `email:` section of the example config."""

from __future__ import annotations

from typer.testing import CliRunner

from handlers.cli import app
from tests.doubles.support import ROOT

EXAMPLE = ROOT / "config.example.yaml"
runner = CliRunner()


def test_check_config_says_whether_e_mail_is_on_and_never_shows_the_password() -> None:
    off = runner.invoke(app, ["check-config", "-c", str(EXAMPLE)], env={})
    assert off.exit_code == 0, off.output
    assert "E-mail: off" in off.output
    env = {"OTKLIK_EMAIL_PASSWORD": "a-real-mailbox-password"}
    on = runner.invoke(app, ["check-config", "-c", str(EXAMPLE)], env=env)
    assert on.exit_code == 0, on.output
    said = " ".join(on.output.split())
    assert "E-mail: on; reads INBOX at mail.example.gov.ru:993 (ssl)" in said
    assert "a-real-mailbox-password" not in on.output
