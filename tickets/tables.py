"""SQL tables of the work-order store (SQLAlchemy Core); the migrations build them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC; refuses naive datetimes on the way in."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store times in UTC with tzinfo")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - SQLite raw strings
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(20), nullable=False, unique=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("title", sa.String(200)),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("summary", sa.Text),
    sa.Column("category", sa.JSON, nullable=False),
    sa.Column("region", sa.String(12)),
    sa.Column("address", sa.String(500)),
    sa.Column("language", sa.String(16), nullable=False),
    sa.Column("caller_name", sa.String(100)),
    sa.Column("caller_phone", sa.String(32)),
    sa.Column("caller_confidential", sa.Boolean, nullable=False),
    sa.Column("attachments", sa.JSON, nullable=False),
    sa.Column("answer", sa.Text),
    sa.Column("answered_at", UTCDateTime),
    sa.Column("satisfaction", sa.String(16)),
    sa.Column("satisfaction_note", sa.Text),
    sa.Column("master_id", BigId, sa.ForeignKey("tickets.id")),
    sa.Column("supervised", sa.Boolean, nullable=False),
    sa.Column("urge_count", sa.Integer, nullable=False),
    sa.Column("rework_count", sa.Integer, nullable=False),
    sa.Column("reply_due", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    # start of the current handling period (NULL: receipt); a reopened order starts anew
    sa.Column("handling_from", UTCDateTime),
    # triage: pending → auto (dispatched by the classifier) | review (a dispatcher decides)
    sa.Column("route_state", sa.String(8), nullable=False, server_default="pending"),
    sa.Column("suggestion", sa.JSON),
    # the channel's own id of the request (a call, an SMS): a redelivery finds the same order
    sa.Column("intake_key", sa.String(120), unique=True),
    # retention (tickets/retention.py): when the caller's identity and the request's details
    # were replaced by a marker, and when the order's files were deleted
    sa.Column("purged_at", UTCDateTime),
    sa.Column("files_purged_at", UTCDateTime),
    # the earliest deadline of the order's running clocks (NULL: none), kept by
    # tickets/clocks.sync in the same transaction: the work lists sort by it and find overdue
    # orders in one index range instead of reading every order's clocks
    sa.Column("next_due_at", UTCDateTime),
    sa.Index("ix_tickets_status_created", "status", "created_at"),
    sa.Index("ix_tickets_route_state", "route_state", "id"),
    sa.Index("ix_tickets_channel_created", "channel", "created_at"),
    sa.Index("ix_tickets_caller_phone", "caller_phone"),
    sa.Index("ix_tickets_created", "created_at"),
    sa.Index("ix_tickets_master", "master_id"),
    sa.Index(
        "ix_tickets_next_due",
        "next_due_at",
        sqlite_where=sa.text("next_due_at IS NOT NULL"),
        postgresql_where=sa.text("next_due_at IS NOT NULL"),
    ),
    sa.Index("ix_tickets_region", "region", "id"),
    sa.Index("ix_tickets_status_due", "status", "next_due_at"),
    sa.Index("ix_tickets_supervised_due", "supervised", "next_due_at"),
    sa.Index("ix_tickets_kind", "kind", "id"),
)

# each name of an order's category path (any level), so the lists' category filter reads an
# index instead of every order's JSON path; kept by triggers on `tickets` (migration 0720), in
# the statement that writes the order, whatever code or tool writes it
ticket_categories = sa.Table(
    "ticket_categories",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("ticket_id", BigId, primary_key=True),
    sqlite_with_rowid=False,
)

# added by later migrations (0600: retention marks; 0700: next_due_at): a data migration before
# them (0200's statistics backfill) reads orders without them (tickets.stats_store.ORDER_COLUMNS)
LATER_COLUMNS = frozenset({"purged_at", "files_purged_at", "next_due_at"})

assignments = sa.Table(
    "ticket_assignments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("department", sa.String(64), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sign_due", UTCDateTime),
    sa.Column("reply_due", UTCDateTime),
    sa.Column("signed_at", UTCDateTime),
    sa.Column("replied_at", UTCDateTime),
    sa.Column("reply", sa.Text),
    sa.Column("return_reason", sa.Text),
    sa.Column("extension_state", sa.String(16), nullable=False),
    sa.Column("extension_until", UTCDateTime),
    sa.Column("extension_reason", sa.Text),
    sa.Column("forwarded_from", BigId, sa.ForeignKey("ticket_assignments.id")),
    # when the task ended without a reply (returned, forwarded, withdrawn)
    sa.Column("ended_at", UTCDateTime),
    sa.Index("ix_assignments_ticket", "ticket_id"),
    # covering for the department's lists (its orders, 待签收, 办理中): the order ids come
    # from the index alone
    sa.Index("ix_assignments_department_state", "department", "state", "ticket_id"),
    sa.Index("ix_assignments_extension", "extension_state", "ticket_id"),
)

events = sa.Table(
    "ticket_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor_role", sa.String(16), nullable=False),
    sa.Column("actor_id", BigId),
    sa.Column("actor_name", sa.String(100), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16)),
    sa.Column("reason", sa.Text),
    sa.Column("old", sa.JSON, nullable=False),
    sa.Column("new", sa.JSON, nullable=False),
    sa.Column("assignment_id", BigId),
    sa.Index("ix_events_ticket", "ticket_id", "id"),
)

# deadline clocks (签收 / 办结 / 回访) per order or assignment; `next_at` is when the watcher must
# look next (the warning point, then the deadline), NULL once overdue or stopped, so the watcher
# reads a short range of a partial index however many orders are open
clocks = sa.Table(
    "ticket_clocks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("assignment_id", BigId, sa.ForeignKey("ticket_assignments.id")),
    sa.Column("clock", sa.String(8), nullable=False),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("start_at", UTCDateTime, nullable=False),
    sa.Column("warn_at", UTCDateTime, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("next_at", UTCDateTime),
    sa.Column("warned_at", UTCDateTime),
    sa.Column("overdue_at", UTCDateTime),
    sa.Column("stopped_at", UTCDateTime),
    sa.Index("ix_clocks_ticket", "ticket_id"),
    sa.Index("ix_clocks_state_due", "state", "due_at"),
    sa.Index(
        "ix_clocks_next",
        "next_at",
        sqlite_where=sa.text("next_at IS NOT NULL"),
        postgresql_where=sa.text("next_at IS NOT NULL"),
    ),
)

# the centre's own decisions as labelled examples for the classifier (manual dispatch,
# re-dispatch after 退单, category corrections)
examples = sa.Table(
    "training_examples",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("category", sa.JSON, nullable=False),
    sa.Column("department", sa.String(64)),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("actor_id", BigId),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_examples_created", "created_at"),
)

# one row per local (Asia/Shanghai) day: the last daily sequence number handed out
numbers = sa.Table(
    "ticket_numbers",
    metadata,
    sa.Column("day", sa.String(8), primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)

# the durable work queue (outbox, tickets/outbox.py): background work written in the same
# transaction as the order change that calls for it; consumers claim due rows under a lease
# (`lease` is the claim's token, `next_at` its expiry) and retry failures with back-off
work_queue = sa.Table(
    "work_queue",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(32), nullable=False),
    sa.Column("ticket_id", BigId),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", UTCDateTime, nullable=False),
    sa.Column("lease", sa.String(36)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.String(300)),
    sa.Index("ix_work_queue_due", "topic", "next_at", "id"),
)

# 多人同诉: a main order and the orders of other callers about the same problem, linked to it
# (merged duplicates are members too, through tickets.master_id); an order is in one group
ticket_groups = sa.Table(
    "ticket_groups",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("main_id", BigId, sa.ForeignKey("tickets.id"), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
)

group_members = sa.Table(
    "ticket_group_members",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("group_id", BigId, sa.ForeignKey("ticket_groups.id"), nullable=False),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False, unique=True),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("added_at", UTCDateTime, nullable=False),
    sa.Column("added_by", sa.String(100), nullable=False),
    sa.Index("ix_group_members_group", "group_id"),
)

# near-duplicates found at intake (诉求汇总): merge candidates for the centre to act on
similar = sa.Table(
    "ticket_similar",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("other_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("ticket_id", "other_id", name="uq_similar_pair"),
    sa.Index("ix_similar_other", "other_id"),
)

# Audited reads of personal data (tickets/privacy.py): append-only, the database refuses
# UPDATE, and DELETE of rows younger than a year (retention deletes older ones)
access_log = sa.Table(
    "access_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor_id", BigId),
    sa.Column("actor_name", sa.String(100), nullable=False),
    sa.Column("actor_role", sa.String(16), nullable=False),
    sa.Column("department", sa.String(64)),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("ticket_id", BigId),  # no foreign key: the log outlives nothing it points at
    sa.Column("subject", sa.String(80)),
    sa.Column("reason", sa.String(500)),
    sa.Column("client", sa.String(64)),
    sa.Index("ix_access_log_at", "at"),
    sa.Index("ix_access_log_ticket", "ticket_id", "at"),
    sa.Index("ix_access_log_actor", "actor_id", "at"),
)
