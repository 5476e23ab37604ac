"""The form's guards on their own: tokens, the client's address behind proxies, the limit,
and what a contact names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from handlers.form.guard import (
    AddressLimit,
    Tokens,
    client_address,
    load_or_create_secret,
    networks,
    reference_of,
)
from handlers.form.web import contact_identity

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
SECRET = "a" * 64


def test_a_token_is_good_with_its_cookie_within_its_lifetime_only() -> None:
    tokens = Tokens(SECRET, timedelta(minutes=120))
    token = tokens.issue(NOW)
    nonce = tokens.check(token, token, NOW + timedelta(minutes=119))
    assert nonce is not None and reference_of(nonce) == f"F-{nonce[:4]}-{nonce[4:]}"
    assert tokens.check(token, "", NOW) is None  # no cookie: another site's post
    assert tokens.check(token, token + "x", NOW) is None
    assert tokens.check(token, token, NOW + timedelta(minutes=121)) is None
    assert tokens.check(token, token, NOW - timedelta(minutes=5)) is None  # from the future
    other = Tokens("b" * 64, timedelta(minutes=120))
    assert other.check(token, token, NOW) is None  # signed with another secret
    issued, nonce, mac = token.split(".")
    moved = f"{int(issued) + 60}.{nonce}.{mac}"  # a longer life, forged
    assert tokens.check(moved, moved, NOW) is None
    assert tokens.check("x" * 500, "x" * 500, NOW) is None


def test_the_secret_is_generated_once_and_kept_for_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "data" / "form.secret"
    first = load_or_create_secret(path)
    assert len(first) == 64 and load_or_create_secret(path) == first
    assert path.stat().st_mode & 0o777 == 0o600


PROXIES = networks(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # not a proxy: its header is a lie
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "1.2.3.4, 203.0.113.7, 10.1.1.1", "203.0.113.7"),  # two proxies
        ("127.0.0.1", "junk, 203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "203.0.113.7, junk", "127.0.0.1"),  # unreadable hop: no guessing past it
        ("127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),
        ("127.0.0.1", "10.0.0.1", "127.0.0.1"),  # only proxies: the nearest counts
    ],
)
def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    remote: str, forwarded: str, client: str
) -> None:
    assert client_address(remote, forwarded, PROXIES) == client


def test_the_limit_counts_per_address_in_any_hour() -> None:
    limit = AddressLimit(2)
    for minute in (0, 30):
        assert not limit.exhausted("a", NOW + timedelta(minutes=minute))
        limit.count("a", NOW + timedelta(minutes=minute))
    assert limit.exhausted("a", NOW + timedelta(minutes=59))
    assert not limit.exhausted("b", NOW + timedelta(minutes=59))
    assert not limit.exhausted("a", NOW + timedelta(minutes=60))  # the first left the hour
    assert not AddressLimit(0).exhausted("a", NOW)


@pytest.mark.parametrize(
    ("contact", "identity"),
    [
        ("Petr@Example.RU", ("email", "petr@example.ru")),
        ("8 (912) 345-67-89", ("phone", "+79123456789")),
        ("+7 912 345 67 89", ("phone", "+79123456789")),
        ("9123456789", ("phone", "+79123456789")),
        ("+44 20 7946 0958", ("phone", "+442079460958")),
        ("petr@", None),
        ("a@b", None),
        ("a..b@example.ru", None),
        ("<script>@x.ru", None),
        ("12-34", None),
        ("٩١٢٣٤٥٦٧٨٩٠", None),  # other scripts' digits
        ("call me", None),
    ],
)
def test_a_contact_names_an_email_or_a_phone_identity(
    contact: str, identity: tuple[str, str] | None
) -> None:
    found = contact_identity(contact, "Пётр")
    assert (None if found is None else (found.channel, found.external_id)) == identity
