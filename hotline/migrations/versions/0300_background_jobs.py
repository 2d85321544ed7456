"""Background work from the durable queue: jobs for what was left undone before it.

Before this revision the triage and the SMS notices followed the in-process bus, and at start
the server caught up (the first 500 untriaged orders, the notices of the last 24 hours) before
it listened. Now every order event writes its jobs in its own transaction (tickets/outbox.py
EVENT_TOPICS), so there is nothing to catch up, except what the old version left: a triage job
for every order still waiting for its triage (all of them, without a cap), and a notice job for
every event of the last 24 hours that called for a notice (notices carry a dedupe key per event,
so those already made are not made again).

Revision ID: 0300
Revises: 0400
Create Date: 2026-12-03
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0300"
down_revision = "0400"  # relinked after merging main (written against 0100)
branch_labels = None
depends_on = None

TRIAGE = "triage"
NOTICE = "notice"
NOTICE_ACTIONS = ("create", "dispatch", "deadline_warning", "deadline_overdue", "answer", "approve")
NOTICE_WINDOW = timedelta(hours=24)  # what the old start-up catch-up looked back over
CHUNK = 5000

# the tables as this revision knows them (later changes to tickets/tables.py do not apply)
tickets = sa.table(
    "tickets",
    sa.column("id", BigId),
    sa.column("status", sa.String),
    sa.column("route_state", sa.String),
)
events = sa.table(
    "ticket_events",
    sa.column("id", BigId),
    sa.column("ticket_id", BigId),
    sa.column("at", UTCDateTime),
    sa.column("action", sa.String),
)
work_queue = sa.table(
    "work_queue",
    sa.column("topic", sa.String),
    sa.column("ticket_id", BigId),
    sa.column("payload", sa.JSON),
    sa.column("attempts", sa.Integer),
    sa.column("next_at", UTCDateTime),
    sa.column("created_at", UTCDateTime),
)


def _job(topic: str, ticket_id: int, event_id: int, action: str, now: datetime) -> dict:
    return {
        "topic": topic,
        "ticket_id": ticket_id,
        "payload": {"event_id": event_id, "action": action},
        "attempts": 0,
        "next_at": now,
        "created_at": now,
    }


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    untriaged = (
        sa.select(events.c.id, events.c.ticket_id)
        .select_from(events.join(tickets, tickets.c.id == events.c.ticket_id))
        .where(
            tickets.c.status == "new",
            tickets.c.route_state == "pending",
            events.c.action == "create",
        )
        .order_by(events.c.id)
    )
    recent = (
        sa.select(events.c.id, events.c.ticket_id, events.c.action)
        .where(events.c.at >= now - NOTICE_WINDOW, events.c.action.in_(NOTICE_ACTIONS))
        .order_by(events.c.id)
    )
    rows = [_job(TRIAGE, r.ticket_id, r.id, "create", now) for r in conn.execute(untriaged)]
    rows += [_job(NOTICE, r.ticket_id, r.id, r.action, now) for r in conn.execute(recent)]
    for i in range(0, len(rows), CHUNK):
        conn.execute(work_queue.insert(), rows[i : i + CHUNK])


def downgrade() -> None:
    op.get_bind().execute(work_queue.delete().where(work_queue.c.topic.in_((TRIAGE, NOTICE))))
