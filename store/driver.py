"""Bulk statements straight to the driver's executemany, values already in database form.

SQLAlchemy's per-row parameter processing costs several times what SQLite needs to store the
row; hot bulk writes (mentions of a batch, the SLA clock's events and notices) come here. The
columns' own type processors (UTC datetimes, JSON) still do the conversion."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from store.models import UTCDateTime

_PROCESSORS: dict[tuple[str, str, tuple[str, ...]], list[Any]] = {}


def processors(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> list[Any]:
    key = (dialect.name, table.name, columns)
    if key not in _PROCESSORS:
        _PROCESSORS[key] = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
        ]
    return _PROCESSORS[key]


def marks(paramstyle: str, count: int) -> list[str]:
    if paramstyle == "qmark":
        return ["?"] * count
    if paramstyle == "numeric_dollar":
        return [f"${i}" for i in range(1, count + 1)]
    if paramstyle in ("format", "pyformat"):
        return ["%s"] * count
    raise NotImplementedError(f"bulk writes do not support paramstyle {paramstyle!r}")


def database_form(rows: Sequence[Sequence[Any]], converters: list[Any]) -> list[tuple[Any, ...]]:
    active = [(i, p) for i, p in enumerate(converters) if p is not None]
    if not active:
        return [tuple(row) for row in rows]
    # A batch repeats values (received_at, codes, last seen): convert each once. Dicts (JSON
    # payloads) are not hashable and rarely repeat: converted every time.
    memo: dict[tuple[int, Any], Any] = {}
    converted = []
    for row in rows:
        values = list(row)
        for i, process in active:
            value = values[i]
            if value is None:
                continue
            if isinstance(value, dict):
                values[i] = process(value)
                continue
            key = (i, value)
            if key not in memo:
                memo[key] = process(list(value) if isinstance(value, tuple) else value)
            values[i] = memo[key]
        converted.append(tuple(values))
    return converted


async def insert_rows(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    skip_conflicts_on: str | None = None,
) -> None:
    """INSERT each row (values in `columns` order); with `skip_conflicts_on`, a row whose
    unique column already holds its value is left out (ON CONFLICT DO NOTHING: SQLite 3.24+
    and PostgreSQL). The models' Python-side defaults do not apply here: give every column
    that has no server default."""
    if not rows:
        return
    connection = await session.connection()
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(table.name),
        ", ".join(quote(c) for c in columns),
        ", ".join(marks(dialect.paramstyle, len(columns))),
    )
    if skip_conflicts_on is not None:
        sql += f" ON CONFLICT ({quote(skip_conflicts_on)}) DO NOTHING"
    await connection.exec_driver_sql(sql, database_form(rows, processors(dialect, table, columns)))


_CONVERTERS: dict[tuple[str, str, tuple[str, ...]], list[tuple[int, Any]]] = {}


def _converters(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> list[tuple[int, Any]]:
    key = (dialect.name, table.name, columns)
    if key not in _CONVERTERS:
        found = (_converter(table.c[name].type, dialect) for name in columns)
        _CONVERTERS[key] = [(i, p) for i, p in enumerate(found) if p is not None]
    return _CONVERTERS[key]


def _converter(column_type: TypeEngine[Any], dialect: Dialect) -> Any:
    if dialect.name == "sqlite" and isinstance(column_type, UTCDateTime):
        return _sqlite_utc  # the same result as the type's chain of processors, in one call
    return column_type.dialect_impl(dialect).result_processor(dialect, None)


def _sqlite_utc(value: str) -> datetime:
    return datetime.fromisoformat(value + "+00:00")  # several times faster than .replace()


async def select_rows(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    where: str,
    params: Sequence[Any],
    param_columns: tuple[str, ...],
) -> list[list[Any]]:
    """SELECT `columns` FROM `table` WHERE `where` (the rest of the statement, with `?` for
    each parameter), values converted by the columns' own types: what Core does, without
    compiling the statement or building Row objects. `param_columns` names the column each
    parameter is compared with, for its conversion."""
    connection = await session.connection()
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    placeholders = iter(marks(dialect.paramstyle, len(params)))
    condition = "".join(next(placeholders) if part == "?" else part for part in _split_marks(where))
    sql = "SELECT {} FROM {} WHERE {}".format(
        ", ".join(quote(c) for c in columns), quote(table.name), condition
    )
    bound = database_form([params], processors(dialect, table, param_columns))[0]
    result = await connection.exec_driver_sql(sql, bound)
    converters = _converters(dialect, table, columns)
    rows = []
    for raw in result.all():
        values = list(raw)
        for i, convert in converters:
            if values[i] is not None:
                values[i] = convert(values[i])
        rows.append(values)
    return rows


def _split_marks(where: str) -> list[str]:
    parts: list[str] = []
    for piece in where.split("?"):
        parts += [piece, "?"]
    return parts[:-1]
