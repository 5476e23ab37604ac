"""Encryption at rest of citizens' personal data: AES-256-GCM per value, the id of its key
stored with each value, and keyed hashes (keyed BLAKE2b, "blind indexes") for the columns that
are looked up by value (dedup, grouping, author identities).

Stored forms (store/models.py applies them through column types, so nothing above store/
sees them):
    text   "v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>"
    bytes  b"v1:<key id>:" + nonce ‖ ciphertext ‖ tag
    index  base64(keyed BLAKE2b(index key, value), 128 bits), 22 characters

Keys (load_keyring):
    OTKLIK_DATA_KEY   comma-separated `[id:]base64-of-32-bytes`; the first encrypts, all
                      decrypt (rotation: put the new key first, run `otklik keys rotate`,
                      then drop the old one). Without an id, the id is the key's fingerprint.
    OTKLIK_INDEX_KEY  base64 of 32 bytes for the blind indexes. It is never rotated with the
                      data keys: a new one would change every stored hash.
Neither set and an SQLite file: both are generated once into `<database>.keys` (mode 0600)
beside the file, with a warning at every start; PostgreSQL refuses to start without them.

One keyring per process (`install`): the column types find it there. Next stop:
store/models.py (the types), then store/rotation.py (`otklik keys rotate`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

DATA_KEY_ENV = "OTKLIK_DATA_KEY"
INDEX_KEY_ENV = "OTKLIK_INDEX_KEY"
KEY_FILE_SUFFIX = ".keys"
VERSION = "v1"
_PREFIX = VERSION + ":"
_PREFIX_BYTES = _PREFIX.encode()
_NONCE = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
# Sets derived secrets apart from anything else keyed by the index key.
_DERIVED_LABEL = b"otklik derived secret\0"
# Recent values' hashes, in two generations of this many: a batch looks its ids up, then
# stores them, and an import's batch of 5,000 mentions hashes some 15,000 values.
_BLINDED_KEPT = 16_384


class KeyringError(Exception):
    """Keys missing, malformed, or not the ones the data was written with."""


@dataclass(frozen=True)
class Keyring:
    """The data keys by id (`current` encrypts; None stores plaintext, for the benchmark's
    baseline only) and the index key. `origin` says where they came from, for messages."""

    current: str | None
    keys: Mapping[str, bytes] = field(repr=False)  # never in a log or a traceback
    index_key: bytes = field(repr=False)
    origin: str = "given"
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, compare=False, repr=False)
    # Recent values' hashes: a batch looks its ids up, then stores them with their hashes.
    _blinded: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _blinded_before: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _sealing: list[Any] = field(default_factory=list, compare=False, repr=False)
    # The index key's BLAKE2b state, keyed once: a copy per value skips hashing the key's
    # block again (half the cost of a short value's hash), with the very same digests.
    _indexing: list[Any] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.current is not None and self.current not in self.keys:
            raise KeyringError(f"the current key {self.current!r} is not in the keyring")
        for key_id, key in self.keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise KeyringError(f"key id {key_id!r}: letters, digits, _ and - only")
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id!r}: {len(key)} bytes, AES-256 needs 32")
            self._ciphers[key_id] = AESGCM(key)
        if self.current is not None:  # what each encryption needs, looked up once
            self._sealing.extend((f"{_PREFIX}{self.current}:", self._ciphers[self.current]))
        if len(self.index_key) != KEY_BYTES:
            raise KeyringError(f"the index key has {len(self.index_key)} bytes, needs 32")
        self._indexing.append(blake2b(key=self.index_key, digest_size=16))

    @classmethod
    def generate(cls, origin: str = "generated") -> Keyring:
        key = secrets.token_bytes(KEY_BYTES)
        return cls(fingerprint(key), {fingerprint(key): key}, secrets.token_bytes(32), origin)

    @classmethod
    def plaintext(cls) -> Keyring:
        """Stores values in clear and indexes them as they are, as the store did before
        encryption: the ingest benchmark's baseline (SQLite only: a long value overflows a
        hash column's 64 characters on PostgreSQL). No configuration reaches it."""
        return cls(None, {}, secrets.token_bytes(KEY_BYTES), "plaintext (benchmark baseline)")

    # --- values -------------------------------------------------------------------------

    def encrypt(self, value: str) -> str:
        if self.current is None:
            return value
        prefix: str = self._sealing[0]
        cipher: AESGCM = self._sealing[1]
        nonce = os.urandom(_NONCE)
        sealed = cipher.encrypt(nonce, value.encode(), None)
        return prefix + binascii.b2a_base64(nonce + sealed, newline=False).decode("ascii")

    def encrypt_many(self, values: Sequence[str]) -> list[str]:
        """`encrypt` of each value, each under a nonce of its own: equal values give unequal
        texts, as one at a time. The nonces come from one read of the OS's random source,
        and the per-value work is a loop of C calls (a bulk insert seals 5 values a row)."""
        if self.current is None:
            return list(values)
        prefix: str = self._sealing[0]
        seal = self._sealing[1].encrypt
        text = binascii.b2a_base64
        nonces = os.urandom(_NONCE * len(values))
        return [
            prefix
            + text(
                (nonce := nonces[at : at + _NONCE]) + seal(nonce, value.encode(), None),
                newline=False,
            ).decode("ascii")
            for at, value in zip(range(0, len(nonces), _NONCE), values, strict=True)
        ]

    def decrypt(self, stored: str) -> str:
        # No prefix: plaintext written before migration 0011 (or by the baseline).
        if not stored.startswith(_PREFIX):
            return stored
        _, key_id, body = stored.split(":", 2)
        raw = binascii.a2b_base64(body)
        return self._open(key_id, raw[:_NONCE], raw[_NONCE:]).decode()

    def encrypt_bytes(self, value: bytes) -> bytes:
        if self.current is None:
            return value
        nonce = os.urandom(_NONCE)
        sealed = self._ciphers[self.current].encrypt(nonce, value, None)
        return b"%s%s:%s%s" % (_PREFIX_BYTES, self.current.encode(), nonce, sealed)

    def decrypt_bytes(self, stored: bytes) -> bytes:
        if not stored.startswith(_PREFIX_BYTES):
            return stored
        end = stored.index(b":", len(_PREFIX_BYTES))
        key_id = stored[len(_PREFIX_BYTES) : end].decode()
        return self._open(key_id, stored[end + 1 : end + 1 + _NONCE], stored[end + 1 + _NONCE :])

    def _open(self, key_id: str, nonce: bytes, sealed: bytes) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise KeyringError(
                f"a value is encrypted with key {key_id!r}, which {self.origin} does not hold: "
                f"add it to {DATA_KEY_ENV} (after the current key)"
            )
        try:
            return cipher.decrypt(nonce, sealed, None)
        except InvalidTag:
            raise KeyringError(f"a value under key {key_id!r} does not authenticate") from None

    def blind(self, value: str) -> str:
        """The keyed hash a value is looked up by: equal values, equal hashes."""
        if self.current is None:  # the benchmark's baseline: no cryptography at all
            return value
        found = self._blinded.get(value)
        return found if found is not None else self.blind_many((value,))[0]

    def blind_many(self, values: Iterable[str]) -> list[str]:
        """`blind` of each value. Recent values' hashes are kept (two generations of
        _BLINDED_KEPT): a batch looks its ids up, then stores them with their hashes."""
        if self.current is None:
            return list(values)
        recent, older = self._blinded, self._blinded_before
        keyed = self._indexing[0].copy
        text = binascii.b2a_base64
        hashes = []
        for value in values:
            found = recent.get(value)
            if found is None:
                found = older.get(value)
                if found is None:
                    # Keyed BLAKE2b is a MAC by design (RFC 7693): a fraction of HMAC-SHA256's
                    # cost. 128 bits: a collision needs ~2^64 values, and every index and
                    # unique constraint on these columns is half the size.
                    hashing = keyed()
                    hashing.update(value.encode())
                    found = text(hashing.digest(), newline=False).decode("ascii")[:22]
                if len(recent) >= _BLINDED_KEPT:  # the recent ones become the older ones
                    older.clear()
                    older.update(recent)
                    recent.clear()
                recent[value] = found
            hashes.append(found)
        return hashes

    def derived_secret(self, label: str) -> str:
        """A secret that every process holding these keys computes alike and nobody stores:
        HMAC-SHA256 of `label` under the index key, as 43 URL-safe characters. The index key,
        not a data key: it is the same on every instance and never rotated, whereas during a
        data key rotation instances restarted one by one would hold different current keys."""
        digest = hmac.new(self.index_key, _DERIVED_LABEL + label.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    @staticmethod
    def key_id_of(stored: str | bytes | None) -> str | None:
        """The id of the key a stored value is encrypted with; None for plaintext."""
        if isinstance(stored, bytes):
            if not stored.startswith(_PREFIX_BYTES):
                return None
            return stored[len(_PREFIX_BYTES) : stored.index(b":", len(_PREFIX_BYTES))].decode()
        if stored is None or not stored.startswith(_PREFIX):
            return None
        return stored.split(":", 2)[1]


def fingerprint(key: bytes) -> str:
    """A key's default id: short, and different for different keys."""
    return "k" + hashlib.sha256(b"otklik data key id\0" + key).hexdigest()[:8]


# --- the process's keyring -------------------------------------------------------------------

_installed: Keyring | None = None
_pinned = False
_before_pin: Keyring | None = None


def install(keyring: Keyring) -> None:
    """Make `keyring` the one the column types use (the last database opened decides)."""
    global _installed
    if not _pinned:
        _installed = keyring


def pinned() -> bool:
    return _pinned


def installed() -> bool:
    return _installed is not None


def pin(keyring: Keyring | None) -> None:
    """Fix the process's keyring whatever databases open later (None: release it and put
    back the one before). For the benchmark, which compares runs of the App with and without
    encryption, and tests that need values in clear."""
    global _installed, _pinned, _before_pin
    if keyring is None:
        if _pinned:
            _installed, _before_pin = _before_pin, None
        _pinned = False
        return
    if not _pinned:
        _before_pin = _installed
    _installed, _pinned = keyring, True


def keyring() -> Keyring:
    if _installed is None:
        raise KeyringError("no keyring installed: open the database through store.Database")
    return _installed


# --- where keys come from ----------------------------------------------------------------------


def load_keyring(url: str, environ: Mapping[str, str]) -> Keyring:
    """The keys for the database at `url`: from the environment, else (an SQLite file only)
    from the key file beside it, generated on first use."""
    data = environ.get(DATA_KEY_ENV, "").strip()
    index = environ.get(INDEX_KEY_ENV, "").strip()
    parsed = make_url(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database and parsed.query.get("uri"):  # `file:/path?mode=ro`: the file is the path
        database = database.removeprefix("file:")
    key_file = key_file_for(database) if database and database != ":memory:" else None
    if data or index:
        if not (data and index):
            missing = INDEX_KEY_ENV if data else DATA_KEY_ENV
            raise KeyringError(f"{missing} is not set: set both {DATA_KEY_ENV} and {INDEX_KEY_ENV}")
        if key_file is not None and key_file.exists():
            log.warning(
                "%s is set, and a key file still lies beside the database (%s): once its keys "
                "are in the environment and `otklik keys rotate` has run, delete it",
                DATA_KEY_ENV,
                key_file,
            )
        return parse_keys(data, index, origin=DATA_KEY_ENV)
    if parsed.get_backend_name() != "sqlite":
        raise KeyringError(
            f"{DATA_KEY_ENV} and {INDEX_KEY_ENV} are required for {parsed.get_backend_name()}: "
            "generate them with `otklik keys generate`"
        )
    if key_file is None:  # in memory: the data dies with the process, and so may its key
        return Keyring.generate("an in-memory key")
    return _key_file_keyring(key_file)


def existing_keyring(url: str, environ: Mapping[str, str]) -> Keyring | None:
    """The keys load_keyring would use, but None where it would generate new ones (an SQLite
    file with no key file beside it and nothing in the environment): `otklik restore` must
    not let a restored database meet keys that never encrypted it."""
    if environ.get(DATA_KEY_ENV, "").strip() or environ.get(INDEX_KEY_ENV, "").strip():
        return load_keyring(url, environ)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    database = parsed.database
    if parsed.query.get("uri"):
        database = database.removeprefix("file:")
    if database == ":memory:" or not key_file_for(database).exists():
        return None
    return load_keyring(url, environ)


def describe_keys(url: str, environ: Mapping[str, str]) -> tuple[str, bool]:
    """What `otklik check-config` says about the keys, and whether it is fit for production;
    KeyringError if the bot could not start with them. Creates nothing."""
    parsed = make_url(url)
    data = environ.get(DATA_KEY_ENV, "").strip()
    index = environ.get(INDEX_KEY_ENV, "").strip()
    if data or index:
        if not (data and index):
            missing = INDEX_KEY_ENV if data else DATA_KEY_ENV
            raise KeyringError(f"{missing} is not set: set both {DATA_KEY_ENV} and {INDEX_KEY_ENV}")
        ring = parse_keys(data, index, origin=DATA_KEY_ENV)
        older = ", ".join(k for k in ring.keys if k != ring.current) or "none"
        return f"from {DATA_KEY_ENV}: current key {ring.current}, older keys: {older}", True
    if parsed.get_backend_name() != "sqlite":
        raise KeyringError(f"{DATA_KEY_ENV} and {INDEX_KEY_ENV} are required for PostgreSQL")
    if not parsed.database or parsed.database == ":memory:":
        return "generated per run (an in-memory database)", False
    path = key_file_for(parsed.database)
    state = "" if path.exists() else " (generated at the first start)"
    return f"{DATA_KEY_ENV} not set: the key file {path}{state}; trial use only", False


def parse_keys(data: str, index: str, origin: str) -> Keyring:
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for entry in (part.strip() for part in data.split(",")):
        if not entry:
            continue
        key_id, _, encoded = entry.rpartition(":")
        key = _decode_key(encoded, f"{DATA_KEY_ENV} entry {len(order) + 1}")
        key_id = key_id or fingerprint(key)
        if key_id in keys:
            raise KeyringError(f"{DATA_KEY_ENV}: key id {key_id!r} appears twice")
        keys[key_id] = key
        order.append(key_id)
    if not order:
        raise KeyringError(f"{DATA_KEY_ENV} holds no key")
    return Keyring(order[0], keys, _decode_key(index, INDEX_KEY_ENV), origin)


def _decode_key(encoded: str, what: str) -> bytes:
    try:
        key = binascii.a2b_base64(encoded.strip())
    except binascii.Error:
        raise KeyringError(f"{what}: not base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{what}: {len(key)} bytes; a key is 32 random bytes in base64")
    return key


def new_key_text() -> str:
    return binascii.b2a_base64(secrets.token_bytes(KEY_BYTES), newline=False).decode("ascii")


def key_file_for(database: str) -> Path:
    return Path(database).with_name(Path(database).name + KEY_FILE_SUFFIX)


def _key_file_keyring(path: Path) -> Keyring:
    if not path.exists():
        data_key, index_key = new_key_text(), new_key_text()
        text = (
            "# Otklik's keys for the personal data in the database beside this file,\n"
            "# generated because OTKLIK_DATA_KEY was not set. Anyone who can read this file\n"
            "# and the database reads the data: in production move both lines into the\n"
            "# environment (README, Security) and delete this file.\n"
            f"{DATA_KEY_ENV}={fingerprint(binascii.a2b_base64(data_key))}:{data_key}\n"
            f"{INDEX_KEY_ENV}={index_key}\n"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it a moment ago: read theirs
            pass
        else:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
            log.warning("generated the data encryption keys in %s (mode 0600)", path)
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users: chmod 600 it", path)
    log.warning(
        "%s is not set: personal data is encrypted with the keys in %s, beside the database. "
        "Fine for a trial; in production set %s and %s (README, Security).",
        DATA_KEY_ENV,
        path,
        DATA_KEY_ENV,
        INDEX_KEY_ENV,
    )
    try:
        return parse_keys(
            values[DATA_KEY_ENV], values[INDEX_KEY_ENV], origin=f"the key file {path}"
        )
    except KeyError as missing:
        raise KeyringError(f"{path}: no {missing.args[0]} line") from None
