"""The audit trail's hash chain: how an event row is sealed, linked and checked.

Each row of `events` carries
- `seal`: sha256 over a random per-row nonce and the canonical JSON of its personal part (the
  actor and the payload);
- `prev_hash`: the previous row's `hash` (GENESIS for the first row; unique, so the chain
  cannot fork);
- `hash`: sha256 over `prev_hash` and the canonical JSON of the row's other fields with the
  seal in place of the personal part.

Erasure (store/repos/erasure.py) may rewrite the personal part of a row, and only that: it
sets `nonce` to NULL and `redacted_by` to the id of the audit event that ordered it, which the
database triggers (migration 0010) check. The chain still verifies because `hash` covers the
seal, not the personal part; without the nonce the seal no longer reveals what it sealed, even
for guessable values such as a name. An unredacted row is checked down to its payload.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bot.model import EventKind

GENESIS = "0" * 64
# The kinds of event that may order earlier rows redacted.
ERASURE_KINDS = frozenset({EventKind.AUTHOR_FORGOTTEN.value, EventKind.RETENTION_ERASED.value})
REDACTED = "[erased]"


_KINDS = ", ".join(f"'{kind}'" for kind in sorted(ERASURE_KINDS))

# What an UPDATE may change: the personal part (actor, payload), the nonce to NULL, and
# redacted_by to a later erasure event that exists. `{same}` is IS on SQLite, IS NOT DISTINCT
# FROM on PostgreSQL.
_REDACTION = """
    NEW.id = OLD.id AND NEW.case_id {same} OLD.case_id AND NEW.at = OLD.at
    AND NEW.kind = OLD.kind AND NEW.from_state {same} OLD.from_state
    AND NEW.to_state {same} OLD.to_state AND NEW.prev_hash = OLD.prev_hash
    AND NEW.hash = OLD.hash AND NEW.seal = OLD.seal
    AND NEW.nonce IS NULL AND NEW.redacted_by IS NOT NULL AND NEW.redacted_by > OLD.id
    AND (OLD.redacted_by IS NULL OR NEW.redacted_by >= OLD.redacted_by)
    AND EXISTS (SELECT 1 FROM events e WHERE e.id = NEW.redacted_by AND e.kind IN ({kinds}))
"""
_REFUSAL = "events are append-only: only erasure may redact a row"

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END""",
    f"""CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
    WHEN NOT ({_REDACTION.format(same="IS", kinds=_KINDS)})
    BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END""",
]

_POSTGRES_TRIGGERS = [
    f"""CREATE FUNCTION otklik_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            IF {_REDACTION.format(same="IS NOT DISTINCT FROM", kinds=_KINDS)} THEN
                RETURN NEW;
            END IF;
        END IF;
        RAISE EXCEPTION '{_REFUSAL} (%)', TG_OP;
    END $$""",
    """CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION otklik_events_append_only()""",
    """CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION otklik_events_append_only()""",
]


def trigger_statements(dialect: str) -> list[str]:
    """The DDL that makes `events` append-only on this backend (migration 0010, and
    Base.metadata.create_all through store/models.py)."""
    return list(_SQLITE_TRIGGERS if dialect == "sqlite" else _POSTGRES_TRIGGERS)


def canonical(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same bytes for the same JSON value, before and
    after a round trip through either database (JSON is stored by the same encoder)."""
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)  # what the store writes
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS)


def new_nonce() -> str:
    return secrets.token_hex(16)


def seal_of(nonce: str, actor: str, payload: dict[str, Any]) -> str:
    personal = canonical({"actor": actor, "payload": payload})
    return hashlib.sha256(bytes.fromhex(nonce) + personal).hexdigest()


def link_hash(
    prev_hash: str,
    case_id: int | None,
    at: datetime,
    kind: str,
    from_state: str | None,
    to_state: str | None,
    seal: str,
) -> str:
    fields = {
        "case_id": case_id,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "kind": kind,
        "from_state": from_state,
        "to_state": to_state,
        "seal": seal,
    }
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(fields)).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One stored event as the audit trail shows it."""

    id: int
    case_id: int | None
    at: datetime
    actor: str
    kind: str
    from_state: str | None
    to_state: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    seal: str
    nonce: str | None
    redacted_by: int | None

    def exported(self) -> dict[str, Any]:
        """The JSON form of exports and of GET /api/v1/events (no nonce: it would let
        anyone holding an export test guesses against a redacted row's seal)."""
        return {
            "id": self.id,
            "case_id": self.case_id,
            "at": self.at.astimezone(UTC).isoformat(),
            "actor": self.actor,
            "kind": self.kind,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "redacted_by": self.redacted_by,
        }


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int
    head: str  # the last row's hash: worth writing down somewhere else now and then
    broken_at: int | None = None  # the first row that does not verify
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


class ChainChecker:
    """Feed rows in id order; the first one that does not fit stops the check."""

    def __init__(self) -> None:
        self._prev = GENESIS
        self._checked = 0
        self._erasures: set[int] = set()
        self._redacted: list[tuple[int, int | None]] = []
        self.broken: tuple[int, str] | None = None

    def feed(self, rows: Iterable[AuditRecord]) -> bool:
        """False once a row did not verify."""
        for row in rows:
            problem = self._problem(row)
            if problem is not None:
                self.broken = (row.id, problem)
                return False
            self._prev = row.hash
            self._checked += 1
            if row.kind in ERASURE_KINDS:
                self._erasures.add(row.id)
        return True

    def _problem(self, row: AuditRecord) -> str | None:
        if row.prev_hash != self._prev:
            return "not linked to the previous event (a row was removed, added or reordered)"
        if row.nonce is not None:
            if seal_of(row.nonce, row.actor, row.payload) != row.seal:
                return "actor or payload changed"
        elif row.redacted_by is None:
            return "nonce removed without a redaction"
        else:
            self._redacted.append((row.id, row.redacted_by))
        expected = link_hash(
            row.prev_hash, row.case_id, row.at, row.kind, row.from_state, row.to_state, row.seal
        )
        if expected != row.hash:
            return "fields changed"
        return None

    def report(self) -> ChainReport:
        if self.broken is not None:
            return ChainReport(self._checked, self._prev, *self.broken)
        for row_id, by in self._redacted:
            if by not in self._erasures or by <= row_id:
                return ChainReport(
                    self._checked, self._prev, row_id, f"redacted by {by}, no later erasure event"
                )
        return ChainReport(self._checked, self._prev)
