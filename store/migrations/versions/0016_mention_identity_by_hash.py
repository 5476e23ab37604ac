"""a mention names its identity by keyed hash; blind indexes become keyed BLAKE2b

Every mention carried an encrypted copy of its author's identity id and name, which
author_identities already holds: two of a mention's five encryptions and a third of its
stored bytes, and two more places an erasure had to reach. A mention now keeps only the
identity's keyed hash (`identity_hash`), the same hash author_identities is looked up by,
and reads the identity through it. The keyed hashes become keyed BLAKE2b (store/crypto.py)
at the same time: every blind index is recomputed here from the decrypted values, with the
process's keyring, in the migration's transaction.

Downgrade puts the copies back from author_identities (the ciphertexts as they are); the
hashes stay BLAKE2b, which the code of this revision reads. An older release cannot read
them: roll back to one by restoring the backup taken before the upgrade.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store import crypto

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BATCH = 1_000
HASH = sa.String(length=64)
ERASED = "[erased]"  # store.audit.REDACTED at this revision
# Blind index column: the column whose plain value it hashes, per table.
HASHED: dict[str, dict[str, str]] = {
    "author_identities": {"external_id_hash": "external_id"},
    "mentions": {
        "external_id_hash": "external_id",
        "url_hash": "url",
        "story_hash": "story_id",
        "reply_to_url_hash": "reply_to_url",
        "identity_hash": "identity_external_id",
    },
}


def upgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_hash", HASH, nullable=True))
    for table, hashes in HASHED.items():
        _rehash(table, hashes)
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_column("identity_external_id")
        batch_op.drop_column("identity_name")


def downgrade() -> None:
    keyring = crypto.keyring()
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_external_id", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("identity_name", sa.Text(), nullable=True))
    connection = op.get_bind()
    connection.execute(
        sa.text(
            "UPDATE mentions SET identity_external_id = i.external_id, "
            "identity_name = i.display_name FROM author_identities AS i "
            "WHERE i.channel = mentions.identity_channel "
            "AND i.external_id_hash = mentions.identity_hash"
        )
    )
    # Erased (or never matched): what erasure used to leave in the copies.
    connection.execute(
        sa.text(
            "UPDATE mentions SET identity_external_id = :erased, identity_name = '' "
            "WHERE identity_external_id IS NULL"
        ),
        {"erased": keyring.encrypt(ERASED)},
    )
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.alter_column("identity_external_id", existing_type=sa.Text(), nullable=False)
        batch_op.alter_column("identity_name", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("identity_hash")


def _rehash(table: str, hashes: dict[str, str]) -> None:
    """Each row of `table`, BATCH rows a statement: every hash column set to the keyed hash
    of its plain column's decrypted value (None where that value is absent or erased)."""
    keyring = crypto.keyring()
    connection = op.get_bind()
    sources = sorted(set(hashes.values()))
    select = sa.text(
        f"SELECT id, {', '.join(sources)} FROM {table} WHERE id > :after ORDER BY id LIMIT {BATCH}"
    )
    assigned = ", ".join(f"{column} = :{column}" for column in hashes)
    update = sa.text(f"UPDATE {table} SET {assigned} WHERE id = :row_id")
    after = 0
    while rows := connection.execute(select, {"after": after}).mappings().all():
        values = []
        for row in rows:
            plain = {s: None if row[s] is None else keyring.decrypt(row[s]) for s in sources}
            if plain.get("identity_external_id") == ERASED:  # the copy an erasure left
                plain["identity_external_id"] = None
            hashed: dict[str, str | None] = {}
            for column, source in hashes.items():
                value = plain[source]
                hashed[column] = None if value is None else keyring.blind(value)
            values.append({"row_id": row["id"], **hashed})
        connection.execute(update, values)
        after = rows[-1]["id"]
