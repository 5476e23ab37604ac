"""citizens' personal data encrypted at rest, looked up by keyed hashes

Encrypts the existing rows here, in the migration's transaction, with the process's keyring
(store/crypto.py): afterwards no value is left in clear, and `otklik keys rotate` is needed
only to change keys. Columns that are looked up by value get a blind index (HMAC) column
that takes over their unique constraint or index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from store import crypto

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 1_000
HASH = sa.String(length=64)

# Columns encrypted, per table, with their type before this revision.
ENCRYPTED: dict[str, dict[str, sa.types.TypeEngine[Any]]] = {
    "authors": {"display_name": sa.String(length=256)},
    "author_identities": {
        "external_id": sa.String(length=256),
        "display_name": sa.String(length=256),
        "profile_url": sa.String(length=2048),
    },
    "cases": {"published_url": sa.String(length=2048)},
    "mentions": {
        "external_id": sa.String(length=256),
        "url": sa.String(length=2048),
        "identity_external_id": sa.String(length=256),
        "identity_name": sa.String(length=256),
        "text": sa.Text(),
        "story_id": sa.String(length=256),
        "reply_to_url": sa.String(length=2048),
    },
    "drafts": {"text": sa.Text(), "note": sa.Text()},
    "outbox": {"payload": sa.JSON()},
}
# Blind index column: the column whose plain value it hashes.
HASHED: dict[str, dict[str, str]] = {
    "author_identities": {"external_id_hash": "external_id"},
    "mentions": {
        "external_id_hash": "external_id",
        "url_hash": "url",
        "story_hash": "story_id",
        "reply_to_url_hash": "reply_to_url",
    },
}
REQUIRED_HASHES = {("author_identities", "external_id_hash"), ("mentions", "external_id_hash")}
# Indexes on a plain column that now index its hash (same names).
MENTION_INDEXES = {
    "ix_mentions_story": ("story_id", "story_hash"),
    "ix_mentions_reply_to_url": ("reply_to_url", "reply_to_url_hash"),
    "ix_mentions_url": ("url", "url_hash"),
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("author_identities", schema=None) as batch_op:
        batch_op.drop_constraint("uq_identity_channel_id", type_="unique")
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_mention_source_external", type_="unique")
        for name in MENTION_INDEXES:
            batch_op.drop_index(name)
    # Ciphertext is longer than its text: every encrypted column becomes TEXT.
    for table, columns in ENCRYPTED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, before in columns.items():
                if isinstance(before, sa.Text):
                    continue
                batch_op.alter_column(
                    column,
                    existing_type=before,
                    type_=sa.Text(),
                    postgresql_using=f"{column}::text" if postgres else None,
                )
            for hashed in HASHED.get(table, {}):
                batch_op.add_column(sa.Column(hashed, HASH, nullable=True))

    keyring = crypto.keyring()
    for table, columns in ENCRYPTED.items():
        _rewrite(table, list(columns), lambda v: keyring.encrypt(v) if v else v, HASHED.get(table))
    _rewrite_blobs(keyring.encrypt_bytes)

    with op.batch_alter_table("author_identities", schema=None) as batch_op:
        batch_op.alter_column("external_id_hash", existing_type=HASH, nullable=False)
        batch_op.create_unique_constraint(
            "uq_identity_channel_hash", ["channel", "external_id_hash"]
        )
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.alter_column("external_id_hash", existing_type=HASH, nullable=False)
        batch_op.create_unique_constraint("uq_mention_source_hash", ["source", "external_id_hash"])
        for name, (_, hashed) in MENTION_INDEXES.items():
            batch_op.create_index(name, [hashed], unique=False)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_mention_source_hash", type_="unique")
        for name in MENTION_INDEXES:
            batch_op.drop_index(name)
    with op.batch_alter_table("author_identities", schema=None) as batch_op:
        batch_op.drop_constraint("uq_identity_channel_hash", type_="unique")

    keyring = crypto.keyring()
    for table, columns in ENCRYPTED.items():
        _rewrite(table, list(columns), lambda v: keyring.decrypt(v) if v else v)
    _rewrite_blobs(keyring.decrypt_bytes)

    for table, columns in ENCRYPTED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for hashed in HASHED.get(table, {}):
                batch_op.drop_column(hashed)
            for column, before in columns.items():
                if isinstance(before, sa.Text):
                    continue
                cast = "json" if isinstance(before, sa.JSON) else "varchar"
                batch_op.alter_column(
                    column,
                    existing_type=sa.Text(),
                    type_=before,
                    postgresql_using=f"{column}::{cast}" if postgres else None,
                )
    with op.batch_alter_table("author_identities", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_identity_channel_id", ["channel", "external_id"])
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_mention_source_external", ["source", "external_id"])
        for name, (plain, _) in MENTION_INDEXES.items():
            batch_op.create_index(name, [plain], unique=False)


def _rewrite(
    table: str,
    columns: list[str],
    convert: Callable[[str | None], str | None],
    hashes: dict[str, str] | None = None,
) -> None:
    """Every row of `table` in id order, BATCH rows a statement: `columns` converted, and
    each of `hashes` (hash column: plain column) set to its plain column's keyed hash."""
    hashes = hashes or {}
    blind = crypto.keyring().blind
    connection = op.get_bind()
    names = ", ".join(columns)
    assigned = ", ".join(f"{c} = :{c}" for c in [*columns, *hashes])
    select = sa.text(f"SELECT id, {names} FROM {table} WHERE id > :after ORDER BY id LIMIT {BATCH}")
    update = sa.text(f"UPDATE {table} SET {assigned} WHERE id = :row_id")
    after = 0
    while rows := connection.execute(select, {"after": after}).mappings().all():
        values = []
        for row in rows:
            plain = {c: _text(row[c]) for c in columns}
            converted: dict[str, Any] = {c: convert(v) for c, v in plain.items()}
            for hashed, source in hashes.items():
                value = plain[source]
                converted[hashed] = None if value is None else blind(value)
            values.append({"row_id": row["id"], **converted})
        connection.execute(update, values)
        after = rows[-1]["id"]


def _text(value: Any) -> str | None:
    # PostgreSQL's json columns are read through a text cast; any other non-text is a bug.
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected text, got {type(value).__name__}")


def _rewrite_blobs(convert: Callable[[bytes], bytes]) -> None:
    connection = op.get_bind()
    select = sa.text(
        f"SELECT id, content FROM blobs WHERE id > :after ORDER BY id LIMIT {BATCH // 10}"
    ).columns(sa.column("id", sa.Integer()), sa.column("content", sa.LargeBinary()))
    update = sa.text("UPDATE blobs SET content = :content WHERE id = :row_id").bindparams(
        sa.bindparam("content", type_=sa.LargeBinary())
    )
    after = 0
    while rows := connection.execute(select, {"after": after}).all():
        values = [{"row_id": row.id, "content": convert(bytes(row.content))} for row in rows]
        connection.execute(update, values)
        after = rows[-1].id
