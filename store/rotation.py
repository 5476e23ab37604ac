"""`otklik keys rotate`: every encrypted value re-encrypted under the current data key.

Table by table, in id order, `batch` rows a transaction, each committed before the next, so
the bot keeps working beside it (on SQLite a batch holds the write lock for milliseconds; on
PostgreSQL it locks only its own rows). A value is replaced only if it still holds what was
read (compare-and-set): one the bot rewrote meanwhile is already under the current key.
Values already under the current key are skipped, so a run that was stopped resumes by
running again. Blind indexes stay as they are: the index key is not rotated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import LargeBinary, Table, Text, bindparam, select, type_coerce, update

from store import crypto
from store.db import Database
from store.driver import rowcount
from store.models import Base, EncryptedBytes, EncryptedJSON, EncryptedText

_TEXT_TYPES = (EncryptedText, EncryptedJSON)


@dataclass
class TableRotation:
    table: str
    rows: int = 0
    rewritten: int = 0  # values moved to the current key
    changed_meanwhile: int = 0  # values the bot replaced between our read and our write
    finished: bool = False


def encrypted_columns() -> dict[Table, list[str]]:
    """Each table that holds encrypted values, and those columns."""
    found: dict[Table, list[str]] = {}
    for table in Base.metadata.sorted_tables:
        names = [c.name for c in table.c if isinstance(c.type, (*_TEXT_TYPES, EncryptedBytes))]
        if names:
            found[table] = names
    return found


async def rotate_keys(
    database: Database,
    batch: int = 500,
    progress: Callable[[TableRotation], None] = lambda _: None,
) -> list[TableRotation]:
    keyring = crypto.keyring()
    if keyring.current is None:
        raise crypto.KeyringError("no current data key to rotate to")
    done = []
    for table, names in encrypted_columns().items():
        state = TableRotation(table.name)
        after = 0
        while True:
            async with database.uow() as uow:
                raw = [_raw(table, name) for name in names]
                rows = (
                    await uow.session.execute(
                        select(table.c.id, *raw)
                        .where(table.c.id > after)
                        .order_by(table.c.id)
                        .limit(batch)
                    )
                ).all()
                if not rows:
                    break
                for index, name in enumerate(names, start=1):
                    stale = [
                        (row[0], row[index])
                        for row in rows
                        if row[index] and crypto.Keyring.key_id_of(row[index]) != keyring.current
                    ]
                    if not stale:
                        continue
                    swapped = await _swap(uow.session, table, name, stale, keyring)
                    state.rewritten += swapped
                    state.changed_meanwhile += len(stale) - swapped
                await uow.commit()
            after = rows[-1][0]
            state.rows += len(rows)
            progress(state)
        state.finished = True
        progress(state)
        done.append(state)
    return done


def _raw(table: Table, name: str) -> Any:
    """The column as stored: the types that decrypt are bypassed."""
    column = table.c[name]
    stored_as = LargeBinary() if isinstance(column.type, EncryptedBytes) else Text()
    return type_coerce(column, stored_as)


async def _swap(
    session: Any, table: Table, name: str, stale: list[tuple[int, Any]], keyring: crypto.Keyring
) -> int:
    column = _raw(table, name)
    if isinstance(table.c[name].type, EncryptedBytes):
        fresh: list[Any] = [keyring.encrypt_bytes(keyring.decrypt_bytes(old)) for _, old in stale]
        kind: Any = LargeBinary()
    else:
        fresh = [keyring.encrypt(keyring.decrypt(old)) for _, old in stale]
        kind = Text()
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"), column == bindparam("b_old", type_=kind))
        .values({name: bindparam("b_new", type_=kind)})
        .execution_options(synchronize_session=False)
    )
    swapped = 0
    # One row a statement: executemany's rowcount is not reliable on every driver, and a
    # batch is small.
    for (row_id, old), new in zip(stale, fresh, strict=True):
        result = await session.execute(statement, {"b_id": row_id, "b_old": old, "b_new": new})
        swapped += rowcount(result)
    return swapped
