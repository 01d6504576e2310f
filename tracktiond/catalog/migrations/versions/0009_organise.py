"""Organise: plans, their journal of steps, and the daemon's inbox queue.

- ``organise_plans``: one per ``tracktiond organise`` run (or file moved by the inbox flow), with
  its state, owner and heartbeat (a plan whose owner died is taken over at the next start);
- ``organise_steps``: what moves where and why a file is skipped; each step's state is the
  journal (``moving``/``undoing`` are committed before the filesystem is touched);
- ``organise_queue``: files that arrived in an inbox root, with lease columns of their own.

See tracktiond/catalog/plans.py and docs/organise.md.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "organise_plans",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("paths", JSON, nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("owner", sa.String(96), nullable=True),
        sa.Column("heartbeat", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("undone_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_organise_plans"),
    )
    op.create_index("ix_organise_plans_state", "organise_plans", ["state"])
    op.create_table(
        "organise_steps",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("follows", sa.Integer(), nullable=True),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("ctime_ns", sa.BigInteger(), nullable=True),
        sa.Column("inode", sa.BigInteger(), nullable=True),
        sa.Column("device", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("moved_inode", sa.BigInteger(), nullable=True),
        sa.Column("moved_device", sa.BigInteger(), nullable=True),
        sa.Column("created_dirs", JSON, nullable=True),
        sa.Column("removed_dirs", JSON, nullable=True),
        sa.Column("details", JSON, nullable=True),
        sa.Column("original", sa.LargeBinary(), nullable=True),
        sa.Column("rewritten_sha256", sa.String(64), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_organise_steps"),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["organise_plans.id"],
            name="fk_organise_steps_plan_id_organise_plans",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_organise_steps_plan_id_seq", "organise_steps", ["plan_id", "seq"])
    op.create_index("ix_organise_steps_plan_id_state", "organise_steps", ["plan_id", "state"])
    op.create_table(
        "organise_queue",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(96), nullable=True),
        sa.Column("lease_expires", TS, nullable=True),
        sa.Column("not_before", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("file_id", name="pk_organise_queue"),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name="fk_organise_queue_file_id_files", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_organise_queue_lease_owner", "organise_queue", ["lease_owner"])


def downgrade() -> None:
    op.drop_index("ix_organise_queue_lease_owner", "organise_queue")
    op.drop_table("organise_queue")
    op.drop_index("ix_organise_steps_plan_id_state", "organise_steps")
    op.drop_index("ix_organise_steps_plan_id_seq", "organise_steps")
    op.drop_table("organise_steps")
    op.drop_index("ix_organise_plans_state", "organise_plans")
    op.drop_table("organise_plans")
