"""SQL of the SMS channel: inbox keys, the outbox queue, block list and survey opt-outs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from telephony.tables import (
    sms_blocklist,
    sms_inbox,
    sms_optout,
    sms_outbox,
    sms_recipient_locks,
    sms_webhook_seen,
)
from tickets.tables import tickets


@dataclass(frozen=True)
class Outgoing:
    id: int
    recipient: str
    text: str
    purpose: str
    ticket_id: int | None
    status: str
    attempts: int
    next_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    fold_until: datetime | None = None
    folded_into: int | None = None


def _outgoing(row: Any) -> Outgoing:
    m = row._mapping
    return Outgoing(**{k: m[k] for k in Outgoing.__dataclass_fields__})


# -- inbox ------------------------------------------------------------------------------------
def get_inbox(conn: Connection, key: str) -> tuple[str, datetime] | None:
    row = conn.execute(
        sa.select(sms_inbox.c.handled_as, sms_inbox.c.received_at).where(sms_inbox.c.key == key)
    ).first()
    return (row.handled_as, row.received_at) if row else None


def take_over_inbox(conn: Connection, key: str, seen_at: datetime, now: datetime) -> bool:
    """Claim a message whose first handling never finished (a crash): one taker wins."""
    c = sms_inbox.c
    stmt = (
        sms_inbox.update()
        .where(c.key == key, c.handled_as == "pending", c.received_at == seen_at)
        .values(received_at=now)
    )
    return conn.execute(stmt).rowcount == 1


def finish_inbox(conn: Connection, key: str, handled_as: str, ticket_id: int | None) -> None:
    conn.execute(
        sms_inbox.update()
        .where(sms_inbox.c.key == key)
        .values(handled_as=handled_as, ticket_id=ticket_id)
    )


def insert_inbox(conn: Connection, values: dict[str, Any]) -> bool:
    """False when the key is already there (a redelivery raced us)."""
    try:
        with conn.begin_nested():
            conn.execute(sms_inbox.insert().values(values))
    except IntegrityError:
        return False
    return True


def count_from(conn: Connection, sender: str, since: datetime) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(sms_inbox)
            .where(sms_inbox.c.sender == sender, sms_inbox.c.received_at >= since)
        ).scalar_one()
    )


# -- outbox -----------------------------------------------------------------------------------
def enqueue(conn: Connection, values: dict[str, Any]) -> int | None:
    """The new message's id; None when its dedupe key was already queued."""
    try:
        with conn.begin_nested():
            return int(
                conn.execute(
                    sms_outbox.insert().values(values).returning(sms_outbox.c.id)
                ).scalar_one()
            )
    except IntegrityError:
        return None


UNSENT = ("queued", "sending")


def due(conn: Connection, now: datetime, limit: int) -> list[Outgoing]:
    """The oldest unsent message of each recipient, if it is due: a later message never
    overtakes an earlier one that failed and waits for its retry (or is being sent). A message
    merely held for quiet hours does not block a later urgent one."""
    c = sms_outbox.c
    blocking = sa.or_(c.next_at <= now, c.attempts > 0, c.status == "sending")
    first = (
        sa.select(sa.func.min(c.id).label("id"))
        .where(c.status.in_(UNSENT), blocking)
        .group_by(c.recipient)
        .subquery()
    )
    stmt = (
        sa.select(sms_outbox)
        .join(first, first.c.id == sms_outbox.c.id)
        .where(c.next_at <= now)
        .order_by(sms_outbox.c.id)
        .limit(limit)
    )
    return [_outgoing(r) for r in conn.execute(stmt)]


def update_outbox(conn: Connection, msg_id: int, values: dict[str, Any]) -> bool:
    """Only an unsent message moves: a delivery report that came first is never undone."""
    c = sms_outbox.c
    stmt = sms_outbox.update().where(c.id == msg_id, c.status.in_(UNSENT)).values(values)
    return conn.execute(stmt).rowcount == 1


def claim(conn: Connection, msg_id: int, now: datetime, lease: timedelta) -> str | None:
    """Take a due message for sending (one sender wins, whatever the number of processes) and
    return its text as it is now (acknowledgements folded into it until this moment included);
    None if another sender has it. If the sender dies, the lease runs out and it is due again."""
    c = sms_outbox.c
    stmt = (
        sms_outbox.update()
        .where(c.id == msg_id, c.status.in_(UNSENT), c.next_at <= now)
        .values(status="sending", next_at=now + lease)
        .returning(c.text)
    )
    return conn.execute(stmt).scalar()


# -- a citizen's notices: folding and the daily cap ---------------------------------------------
def lock_recipient(conn: Connection, phone: str, now: datetime) -> None:
    """Hold this number's lock until the transaction ends (created on first use)."""
    locks = sms_recipient_locks
    touch = locks.update().where(locks.c.phone == phone).values(locked_at=now)
    if conn.execute(touch).rowcount == 1:
        return
    try:
        with conn.begin_nested():
            conn.execute(locks.insert().values(phone=phone, locked_at=now))
    except IntegrityError:  # another writer created it first: wait for its lock
        conn.execute(touch)


def dedupe_taken(conn: Connection, dedupe: str) -> bool:
    c = sms_outbox.c
    return conn.execute(sa.select(c.id).where(c.dedupe == dedupe)).first() is not None


def last_ack_carrier(conn: Connection, recipient: str) -> Outgoing | None:
    """The latest acknowledgement to this number that is (or was) a text of its own."""
    c = sms_outbox.c
    row = conn.execute(
        sa.select(sms_outbox)
        .where(c.recipient == recipient, c.purpose == "ack", c.fold_until.is_not(None))
        .order_by(c.id.desc())
        .limit(1)
    ).first()
    return _outgoing(row) if row else None


def hold_unsent(conn: Connection, msg_id: int) -> bool:
    """Lock a message that no sender has taken yet (False: one has, or it is done): a sender's
    claim then waits for this transaction and reads the text it leaves."""
    c = sms_outbox.c
    stmt = (
        sms_outbox.update()
        .where(c.id == msg_id, c.status.in_(("queued", "kept")))
        .values(status=c.status)
    )
    return conn.execute(stmt).rowcount == 1


def carried_numbers(conn: Connection, carrier_id: int) -> list[str]:
    """The order numbers a carrier acknowledges: its own, then those folded into it."""
    c = sms_outbox.c
    stmt = (
        sa.select(tickets.c.number)
        .select_from(sms_outbox.join(tickets, tickets.c.id == c.ticket_id))
        .where(sa.or_(c.id == carrier_id, c.folded_into == carrier_id))
        .order_by(c.id)
    )
    return list(conn.execute(stmt).scalars())


def set_text(conn: Connection, msg_id: int, text: str) -> None:
    conn.execute(sms_outbox.update().where(sms_outbox.c.id == msg_id).values(text=text))


def count_texts_to(
    conn: Connection, recipient: str, purposes: frozenset[str], since: datetime
) -> int:
    """Texts of these purposes to a number written since `since` (folded and limited ones
    are no texts)."""
    c = sms_outbox.c
    stmt = (
        sa.select(sa.func.count())
        .select_from(sms_outbox)
        .where(
            c.recipient == recipient,
            c.created_at >= since,
            c.purpose.in_(purposes),
            c.status.not_in(("folded", "limited")),
        )
    )
    return int(conn.execute(stmt).scalar_one())


def report_delivery(conn: Connection, msg_id: int, values: dict[str, Any]) -> bool:
    return (
        conn.execute(sms_outbox.update().where(sms_outbox.c.id == msg_id).values(values)).rowcount
        == 1
    )


def get_outbox(conn: Connection, msg_id: int) -> Outgoing | None:
    row = conn.execute(sa.select(sms_outbox).where(sms_outbox.c.id == msg_id)).first()
    return _outgoing(row) if row else None


def list_outbox(
    conn: Connection,
    *,
    recipient: str | None = None,
    ticket_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Outgoing]:
    stmt = sa.select(sms_outbox)
    if recipient is not None:
        stmt = stmt.where(sms_outbox.c.recipient == recipient)
    if ticket_id is not None:
        stmt = stmt.where(sms_outbox.c.ticket_id == ticket_id)
    if status is not None:
        stmt = stmt.where(sms_outbox.c.status == status)
    stmt = stmt.order_by(sms_outbox.c.id.desc()).limit(limit).offset(offset)
    return [_outgoing(r) for r in conn.execute(stmt)]


def last_survey(conn: Connection, phone: str, since: datetime) -> int | None:
    """The work order of the latest survey message sent to this phone since `since`."""
    return conn.execute(
        sa.select(sms_outbox.c.ticket_id)
        .where(
            sms_outbox.c.recipient == phone,
            sms_outbox.c.purpose == "survey",
            sms_outbox.c.created_at >= since,
        )
        .order_by(sms_outbox.c.id.desc())
        .limit(1)
    ).scalar()


# -- block list and opt-outs ------------------------------------------------------------------
def is_blocked(conn: Connection, phone: str) -> bool:
    return (
        conn.execute(sa.select(sms_blocklist.c.phone).where(sms_blocklist.c.phone == phone)).first()
        is not None
    )


def block(conn: Connection, phone: str, reason: str, now: datetime) -> None:
    conn.execute(sms_blocklist.delete().where(sms_blocklist.c.phone == phone))
    conn.execute(sms_blocklist.insert().values(phone=phone, reason=reason, created_at=now))


def unblock(conn: Connection, phone: str) -> bool:
    return conn.execute(sms_blocklist.delete().where(sms_blocklist.c.phone == phone)).rowcount == 1


def list_blocked(conn: Connection) -> list[tuple[str, str, datetime]]:
    rows = conn.execute(sa.select(sms_blocklist).order_by(sms_blocklist.c.created_at.desc()))
    return [(r.phone, r.reason, r.created_at) for r in rows]


def opt_out(conn: Connection, phone: str, now: datetime) -> None:
    if not is_opted_out(conn, phone):
        conn.execute(sms_optout.insert().values(phone=phone, created_at=now))


def is_opted_out(conn: Connection, phone: str) -> bool:
    return (
        conn.execute(sa.select(sms_optout.c.phone).where(sms_optout.c.phone == phone)).first()
        is not None
    )


# -- webhook signatures ------------------------------------------------------------------------
def remember_signature(
    conn: Connection, signature: str, now: datetime, forget_before: datetime
) -> bool:
    """False when this signature was taken before (a replay); drops the ones too old to matter."""
    conn.execute(sms_webhook_seen.delete().where(sms_webhook_seen.c.seen_at < forget_before))
    try:
        with conn.begin_nested():
            conn.execute(sms_webhook_seen.insert().values(signature=signature, seen_at=now))
    except IntegrityError:
        return False
    return True


def forget_signature(conn: Connection, signature: str) -> None:
    conn.execute(sms_webhook_seen.delete().where(sms_webhook_seen.c.signature == signature))


def hour_ago(now: datetime) -> datetime:
    return now - timedelta(hours=1)


# -- retention ----------------------------------------------------------------------------------
def _old_inbox(before: datetime, column: Any, mark: str) -> Any:
    c = sms_inbox.c
    return sa.and_(c.received_at < before, c.handled_as != "pending", column != mark)


def _old_outbox(before: datetime, column: Any, mark: str) -> Any:
    c = sms_outbox.c
    return sa.and_(c.created_at < before, c.status.not_in(UNSENT), column != mark)


def redact_old_messages(
    conn: Connection, before: datetime, mark: str, *, numbers: bool, dry_run: bool
) -> int:
    """Messages (received, or sent and finished with) older than `before`: their bodies, or
    with `numbers` their senders and recipients, replaced by `mark`. Returns how many."""
    targets = (
        (sms_inbox, sms_inbox.c.sender if numbers else sms_inbox.c.text, _old_inbox),
        (sms_outbox, sms_outbox.c.recipient if numbers else sms_outbox.c.text, _old_outbox),
    )
    n = 0
    for table, column, old in targets:
        where = old(before, column, mark)
        if dry_run:
            n += int(conn.execute(sa.select(sa.func.count()).where(where)).scalar_one())
        else:
            n += int(conn.execute(table.update().where(where).values({column.name: mark})).rowcount)
    return n
