"""What keeps robots and other sites out of the web form: signed anti-forgery tokens, the
client's address behind a reverse proxy, and a per-address rate limit.

The token is issued with the page, in a hidden field and in a cookie at once (double submit):
a POST must carry both, equal, signed with the server's secret and younger than its lifetime.
Another site can make a browser POST to /form but can neither read the token nor set our
cookie. The token's random part also names the appeal (its reference number), so sending the
same loaded form twice (a double click, the back button) is one appeal, not two.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

# No 0/O, 1/I/L: a reference read out over the phone survives.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REFERENCE_PREFIX = "F-"
_NONCE_LENGTH = 8  # 31^8: about 8.5e11 references, drawn at random
MAX_TOKEN = 128
MAX_FORWARDED = 2_048  # an X-Forwarded-For longer than this is not from our proxies
MAX_TRACKED_ADDRESSES = 100_000  # the rate limit's memory is bounded too
CLOCK_SKEW = timedelta(seconds=30)
SECRET_BYTES = 32


def load_or_create_secret(path: Path) -> str:
    """The form's signing secret kept in `path` (created once, readable by the owner only),
    so tokens issued before a restart stay valid after it. Blocking: call off the loop."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        secret = ""
    if len(secret) >= 2 * SECRET_BYTES:
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(SECRET_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(secret + "\n")
    return secret


class Tokens:
    """Issues and checks the form's anti-forgery tokens: "<issued unix s>.<nonce>.<mac>"."""

    def __init__(self, secret: str, lifetime: timedelta) -> None:
        self._key = hashlib.sha256(b"otklik-form-token\0" + secret.encode()).digest()
        self.lifetime = lifetime

    def _mac(self, issued: int, nonce: str) -> str:
        message = f"{issued}.{nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def issue(self, now: datetime) -> str:
        nonce = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(_NONCE_LENGTH))
        issued = int(now.timestamp())
        return f"{issued}.{nonce}.{self._mac(issued, nonce)}"

    def check(self, token: str, cookie: str, now: datetime) -> str | None:
        """The token's nonce when the pair is good, else None (no reason: a forger learns
        nothing from which check failed)."""
        if (
            not token
            or len(token) > MAX_TOKEN
            or not hmac.compare_digest(token.encode(), cookie.encode())
        ):
            return None
        issued_text, _, rest = token.partition(".")
        nonce, _, mac = rest.partition(".")
        if not (issued_text.isascii() and issued_text.isdigit() and len(issued_text) <= 12):
            return None
        if len(nonce) != _NONCE_LENGTH or any(c not in REFERENCE_ALPHABET for c in nonce):
            return None
        issued = int(issued_text)
        if not hmac.compare_digest(mac.encode(), self._mac(issued, nonce).encode()):
            return None
        age = now - datetime.fromtimestamp(issued, now.tzinfo)
        if age > self.lifetime or age < -CLOCK_SKEW:
            return None
        return nonce


def reference_of(nonce: str) -> str:
    """The reference number the citizen is shown, and the mention's external id."""
    half = len(nonce) // 2
    return f"{REFERENCE_PREFIX}{nonce[:half]}-{nonce[half:]}"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:443"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def is_trusted(remote: str | None, trusted: tuple[Network, ...]) -> bool:
    """Whether the peer is one of our reverse proxies."""
    peer = _address(remote or "")
    return peer is not None and any(peer in net for net in trusted)


def client_address(remote: str | None, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """Who sent the request. X-Forwarded-For is believed only from a trusted proxy, and read
    from the right: each proxy appends the address it saw, so the first one from the right
    that is not a trusted proxy is the client (anything left of it the client may have
    written itself)."""
    peer = _address(remote or "")
    if peer is None:
        return remote or "unknown"
    if not trusted or not any(peer in net for net in trusted):
        return str(peer)
    if not forwarded_for or len(forwarded_for) > MAX_FORWARDED:
        return str(peer)
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            return str(peer)  # a hop we cannot read: do not guess past it
        if not any(address in net for net in trusted):
            return str(address)
    return str(peer)


class AddressLimit:
    """At most `per_hour` counted events per client address in any hour; 0: no limit. Time
    comes from the caller (the injected clock), so tests need not wait an hour."""

    WINDOW = timedelta(hours=1)

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._seen: dict[str, deque[datetime]] = {}

    def _recent(self, address: str, now: datetime) -> deque[datetime]:
        seen = self._seen.get(address)
        if seen is None:
            if len(self._seen) >= MAX_TRACKED_ADDRESSES:
                self._forget_idle(now)
            seen = self._seen.setdefault(address, deque())
        while seen and now - seen[0] >= self.WINDOW:
            seen.popleft()
        return seen

    def exhausted(self, address: str, now: datetime) -> bool:
        return bool(self.per_hour) and len(self._recent(address, now)) >= self.per_hour

    def count(self, address: str, now: datetime) -> None:
        if self.per_hour:
            self._recent(address, now).append(now)

    def _forget_idle(self, now: datetime) -> None:
        for address in [
            a for a, seen in self._seen.items() if not seen or now - seen[-1] >= self.WINDOW
        ]:
            del self._seen[address]
        while len(self._seen) >= MAX_TRACKED_ADDRESSES:  # a flood of distinct addresses
            del self._seen[next(iter(self._seen))]
