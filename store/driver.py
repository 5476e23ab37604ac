"""Bulk statements straight to the driver's executemany, values already in database form,
and the few things every repository shares (chunks of keys, INSERT … ON CONFLICT DO NOTHING,
JSON arrays as rows, a lost race as ConcurrentUpdate).

SQLAlchemy's per-row parameter processing costs several times what SQLite needs to store the
row; hot bulk writes (mentions of a batch, the SLA clock's events and notices) come here. The
columns' own type processors (UTC datetimes, JSON) still do the conversion, a column at a time;
encrypted columns and keyed hashes convert their whole column in one call (store/models.py,
BulkBound), each value sealed under a nonce of its own."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Float, Table, any_, bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, Dialect, Result, Row
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias

from bot.ports import ConcurrentUpdate
from store.models import BulkBound, ColumnProcessor, UTCDateTime

T = TypeVar("T")

# Well under every backend's limit of bound parameters per statement.
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in slices of `size`, for IN lists and executemany batches."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def one_of(session: AsyncSession, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(array)`: one parameter, so the
    statement's text, and the prepared statement the server keeps for it, is the same for
    any number of values (an IN list of each length is parsed and planned anew)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(
            ColumnElement[bool],
            column == any_(bindparam(None, list(values), type_=ARRAY(column.type))),
        )
    return cast(ColumnElement[bool], column.in_(values))


def conflict_insert(session: AsyncSession, table: Any) -> PostgresInsert | SqliteInsert:
    """INSERT that can say ON CONFLICT DO NOTHING on both backends."""
    if session.get_bind().dialect.name == "postgresql":
        return postgres_insert(table)
    return sqlite_insert(table)


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. Session.execute is typed to return a Result; for
    those statements it is a CursorResult, which counts them."""
    return cast(CursorResult[Any], result).rowcount


def json_elements(column: Any, *, sqlite: bool) -> TableValuedAlias:
    """A JSON array column's elements as rows of one column, "value": json_each on SQLite,
    json_array_elements_text on PostgreSQL (the column is `json` there)."""
    if sqlite:
        return func.json_each(column).table_valued("value")
    return func.json_array_elements_text(column).table_valued("value")


@contextmanager
def raced(what: str) -> Iterator[None]:
    """A bulk write that lost a race (a key another writer stored since our reads, or SQLite's
    stale-snapshot refusal) becomes ConcurrentUpdate: the caller runs the batch again."""
    try:
        yield
    except IntegrityError as error:
        raise ConcurrentUpdate(f"{what}: {error.orig}") from error
    except DBAPIError as error:
        if not lost_race(error):
            raise
        raise ConcurrentUpdate(f"{what}: {error.orig}") from error


def lost_race(error: BaseException) -> bool:
    """SQLite's "database is locked"; PostgreSQL's deadlock (40P01) and serialization (40001)
    failures: the transaction lost a race and is rolled back whole, so running it again is safe."""
    if not isinstance(error, DBAPIError):
        return False
    if isinstance(error, OperationalError) and "locked" in str(error.orig):
        return True
    return getattr(error.orig, "sqlstate", None) in ("40P01", "40001")


_PROCESSORS: dict[tuple[str, str, tuple[str, ...]], list[ColumnProcessor | None]] = {}


def processors(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> list[ColumnProcessor | None]:
    """What converts each column's values into database form, a whole column at a time
    (database_form); None where the driver takes them as they are."""
    key = (dialect.name, table.name, columns)
    if key not in _PROCESSORS:
        _PROCESSORS[key] = [_column_processor(dialect, table.c[name].type) for name in columns]
    return _PROCESSORS[key]


def _column_processor(dialect: Dialect, column_type: Any) -> ColumnProcessor | None:
    if isinstance(column_type, BulkBound):  # encrypted values, keyed hashes (store/crypto.py)
        return column_type.bind_column()
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    return None if process is None else functools.partial(_memoised, process)


def _memoised(process: Any, values: Sequence[Any]) -> list[Any]:
    """`process` of each value. A batch repeats values (received_at, codes, last seen):
    each is converted once. Tuples stand for JSON lists (hashable); an unhashable value (a
    dict) is converted every time. Never for encrypted values: equal ones must not give
    equal texts (BulkBound types convert their own columns)."""
    memo: dict[Any, Any] = {}
    converted: list[Any] = []
    for value in values:
        if value is None:
            converted.append(None)
            continue
        if isinstance(value, dict):  # payloads: unhashable, and rarely repeated
            converted.append(process(value))
            continue
        try:
            done = memo.get(value, _UNSEEN)
        except TypeError:  # another unhashable value
            converted.append(process(value))
            continue
        if done is _UNSEEN:
            done = memo[value] = process(list(value) if isinstance(value, tuple) else value)
        converted.append(done)
    return converted


def marks(paramstyle: str, count: int) -> list[str]:
    if paramstyle == "qmark":
        return ["?"] * count
    if paramstyle == "numeric_dollar":
        return [f"${i}" for i in range(1, count + 1)]
    if paramstyle in ("format", "pyformat"):
        return ["%s"] * count
    raise NotImplementedError(f"bulk writes do not support paramstyle {paramstyle!r}")


def result_processor(dialect: Dialect, table: Table, column: str) -> Any:
    """What turns a column's raw driver value into Python (JSON text on SQLite), or None."""
    return table.c[column].type.dialect_impl(dialect).result_processor(dialect, None)


def database_form(
    rows: Sequence[Sequence[Any]], converters: list[ColumnProcessor | None]
) -> list[tuple[Any, ...]]:
    """`rows` with each column converted by its processor (processors), column by column."""
    if not rows or all(convert is None for convert in converters):
        return [tuple(row) for row in rows]
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for i, convert in enumerate(converters):
        if convert is not None:
            columns[i] = convert(columns[i])
    return list(zip(*columns, strict=True))


_UNSEEN = object()


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
    that has no server default. SQLite runs the statement once a row (executemany: cheap
    in-process); PostgreSQL gets one statement for all rows (_unnest_insert)."""
    if not rows:
        return
    connection = await session.connection()
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    values = database_form(rows, processors(dialect, table, columns))
    skip = (
        "" if skip_conflicts_on is None else f" ON CONFLICT ({quote(skip_conflicts_on)}) DO NOTHING"
    )
    if dialect.name == "postgresql":
        sql, arrays = _unnest_insert(dialect, table, columns, values)
        await connection.exec_driver_sql(sql + skip, arrays)
        return
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(table.name),
        ", ".join(quote(c) for c in columns),
        ", ".join(marks(dialect.paramstyle, len(columns))),
    )
    await connection.exec_driver_sql(sql + skip, values)


async def insert_returning(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    returning: tuple[str, ...],
) -> list[Row[Any]]:
    """insert_rows on PostgreSQL, and the raw values of `returning` of each new row, in no
    particular order (tell rows apart by a unique column)."""
    if not rows:
        return []
    connection = await session.connection()
    dialect = connection.dialect
    values = database_form(rows, processors(dialect, table, columns))
    sql, arrays = _unnest_insert(dialect, table, columns, values)
    quote = dialect.identifier_preparer.quote
    sql += " RETURNING " + ", ".join(quote(c) for c in returning)
    return list((await connection.exec_driver_sql(sql, arrays)).all())


def _unnest_insert(
    dialect: Dialect, table: Table, columns: tuple[str, ...], values: Sequence[Sequence[Any]]
) -> tuple[str, tuple[list[Any], ...]]:
    """One INSERT … SELECT FROM unnest(column arrays) for all rows, on PostgreSQL: one statement
    the server plans and runs once (executemany runs it once a row), its text the same for any
    number of rows, so the prepared statement is reused."""
    quote = dialect.identifier_preparer.quote
    key = (table.name, columns)
    sql = _UNNEST_SQL.get(key)
    if sql is None:
        arrays, picked = [], []
        for i, name in enumerate(columns, 1):
            kind = table.c[name].type.dialect_impl(dialect).compile(dialect=dialect)
            # JSON arrives serialised (the type's bind processor): as text, then cast.
            json = kind.startswith("JSON")
            arrays.append(f"CAST(${i} AS {'TEXT' if json else kind}[])")
            picked.append(f"v{i}::{kind}" if json else f"v{i}")
        names = ", ".join(f"v{i}" for i in range(1, len(columns) + 1))
        sql = _UNNEST_SQL[key] = "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS v({})".format(
            quote(table.name),
            ", ".join(quote(c) for c in columns),
            ", ".join(picked),
            ", ".join(arrays),
            names,
        )
    by_column = tuple(list(column) for column in zip(*values, strict=True))
    return sql, by_column


_UNNEST_SQL: dict[tuple[str, tuple[str, ...]], str] = {}


_CONVERTERS: dict[tuple[str, str, tuple[str, ...]], list[tuple[int, Any]]] = {}


def _converters(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> list[tuple[int, Any]]:
    key = (dialect.name, table.name, columns)
    if key not in _CONVERTERS:
        found = (_converter(dialect, table, name) for name in columns)
        _CONVERTERS[key] = [(i, p) for i, p in enumerate(found) if p is not None]
    return _CONVERTERS[key]


def _converter(dialect: Dialect, table: Table, column: str) -> Any:
    if dialect.name == "sqlite" and isinstance(table.c[column].type, UTCDateTime):
        return _sqlite_utc  # the same result as the type's chain of processors, in one call
    if isinstance(table.c[column].type, Float):
        # Every driver gives a float column as float; asyncpg's processor would need the
        # column's type OID, which a raw fetch does not pass.
        return None
    return result_processor(dialect, table, column)


def _sqlite_utc(value: str) -> datetime:
    return datetime.fromisoformat(value + "+00:00")  # several times faster than .replace()


_SQL: dict[tuple[str, str], str] = {}
_SQL_KEPT = 4_096  # statements kept converted (IN lists of every length up to a chunk)


def driver_sql(dialect: Dialect, sql: str) -> str:
    """`sql`, written with `?` for each parameter, in the driver's own placeholders."""
    key = (dialect.paramstyle, sql)
    found = _SQL.get(key)
    if found is None:
        pieces = sql.split("?")
        places = marks(dialect.paramstyle, len(pieces) - 1)
        found = pieces[0] + "".join(m + p for m, p in zip(places, pieces[1:], strict=True))
        if len(_SQL) < _SQL_KEPT:
            _SQL[key] = found
    return found


def in_list(count: int) -> str:
    """`?, ?, …` for an IN list of `count` values."""
    return ", ".join("?" * count)


async def fetch(session: AsyncSession, sql: str, params: Sequence[Any]) -> list[Row[Any]]:
    """The rows of `sql` (with `?` marks; parameters already in database form), straight
    from the driver: SQLAlchemy renders an expanding IN parameter by parameter, which costs
    more than SQLite's look-up itself."""
    connection = await session.connection()
    result = await connection.exec_driver_sql(driver_sql(connection.dialect, sql), tuple(params))
    return list(result.all())


async def rows_in(
    session: AsyncSession, template: str, fixed: Sequence[Any], keys: Sequence[Any]
) -> list[Row[Any]]:
    """Rows of `template` for `keys`, CHUNK keys a statement. In the template `?` stands for
    each of the `fixed` parameters (in database form) and `{keys}` for the list of keys."""
    found: list[Row[Any]] = []
    connection = await session.connection()
    if connection.dialect.name == "postgresql" and keys:
        # One array parameter for all keys: one statement, its text (and so its prepared
        # statement) the same for any number of keys.
        kind = "BIGINT" if isinstance(keys[0], int) else "TEXT"
        sql = template.replace("IN ({keys})", f"= ANY(CAST(? AS {kind}[]))")
        return await fetch(session, sql, (*fixed, list(keys)))
    for chunk in chunks(keys):
        found += await fetch(session, template.format(keys=in_list(len(chunk))), (*fixed, *chunk))
    return found


async def insert_numbered(
    session: AsyncSession, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """insert_rows on SQLite, and the new rows' ids in order without reading the rows back.

    A row inserted without an id gets the table's largest id + 1, and from its first insert
    the transaction holds SQLite's only write lock: the batch takes the next len(rows) ids.
    Anything else (another writer between the look at the largest id and the insert, or a
    table whose ids ran out, where SQLite picks free ids at random) shows as a gap: the
    caller runs the batch again."""
    connection = await session.connection()
    largest = f"SELECT max(id) FROM {connection.dialect.identifier_preparer.quote(table.name)}"
    before = (await connection.exec_driver_sql(largest)).scalar() or 0
    await insert_rows(session, table, columns, rows)
    after = (await connection.exec_driver_sql(largest)).scalar()
    if after != before + len(rows):
        raise ConcurrentUpdate(f"{table.name}: ids {before}..{after} for {len(rows)} new rows")
    return list(range(before + 1, after + 1))


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
    sql = "SELECT {} FROM {} WHERE {}".format(
        ", ".join(quote(c) for c in columns), quote(table.name), where
    )
    bound = database_form([params], processors(dialect, table, param_columns))[0]
    converters = _converters(dialect, table, columns)
    rows = []
    for raw in await fetch(session, sql, bound):
        values = list(raw)
        for i, convert in converters:
            if values[i] is not None:
                values[i] = convert(values[i])
        rows.append(values)
    return rows
