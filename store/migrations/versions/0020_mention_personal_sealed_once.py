"""a mention's personal values sealed as one encrypted record

A mention's external id, URL, text, story id and reply-to URL were each encrypted in a
column of its own: three to five AES-GCM seals a mention, each with its nonce, tag and key id
stored, the largest share of the cost of encryption on intake. They become one record,
`personal`: the JSON array [external_id, url, text, story_id, reply_to_url] encrypted once.
The keyed hashes stay columns of their own (dedup, grouping and look-ups by link), so no
index changes. Upgrade and downgrade decrypt and re-encrypt with the process's keyring, in
the migration's transaction; values stored in clear (the benchmark's baseline) stay in clear.

Revision ID: 0020
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from alembic import op

from store import crypto

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

BATCH = 1_000
# store.models.MENTION_PERSONAL at this revision: the record's order.
PERSONAL = ("external_id", "url", "text", "story_id", "reply_to_url")
REQUIRED = ("external_id", "text")


def upgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("personal", sa.Text(), nullable=True))
    keyring = crypto.keyring()
    connection = op.get_bind()
    select = sa.text(
        f"SELECT id, {', '.join(PERSONAL)} FROM mentions WHERE id > :after "
        f"ORDER BY id LIMIT {BATCH}"
    )
    update = sa.text("UPDATE mentions SET personal = :personal WHERE id = :row_id")
    after = 0
    while rows := connection.execute(select, {"after": after}).mappings().all():
        values = []
        for row in rows:
            record = [None if row[c] is None else keyring.decrypt(row[c]) for c in PERSONAL]
            sealed = keyring.encrypt(orjson.dumps(record).decode())
            values.append({"row_id": row["id"], "personal": sealed})
        connection.execute(update, values)
        after = rows[-1]["id"]
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.alter_column("personal", existing_type=sa.Text(), nullable=False)
        for column in PERSONAL:
            batch_op.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        for column in PERSONAL:
            batch_op.add_column(sa.Column(column, sa.Text(), nullable=True))
    keyring = crypto.keyring()
    connection = op.get_bind()
    select = sa.text(
        f"SELECT id, personal FROM mentions WHERE id > :after ORDER BY id LIMIT {BATCH}"
    )
    assigned = ", ".join(f"{column} = :{column}" for column in PERSONAL)
    update = sa.text(f"UPDATE mentions SET {assigned} WHERE id = :row_id")
    after = 0
    while rows := connection.execute(select, {"after": after}).mappings().all():
        values = []
        for row in rows:
            record = orjson.loads(keyring.decrypt(row["personal"]))
            # "" stays "" (EncryptedText stores emptiness as it is), None stays None.
            sealed = {
                c: keyring.encrypt(v) if v else v for c, v in zip(PERSONAL, record, strict=True)
            }
            values.append({"row_id": row["id"], **sealed})
        connection.execute(update, values)
        after = rows[-1]["id"]
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        for column in REQUIRED:
            batch_op.alter_column(column, existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("personal")
