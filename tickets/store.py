"""All SQL of the work-order store: rows in, dataclasses out. Callers own the transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from tickets import outbox
from tickets.model import (
    Assignment,
    AssignmentRole,
    AssignmentState,
    Caller,
    Channel,
    Clock,
    ClockKind,
    ClockState,
    ExtensionState,
    Kind,
    NewTicket,
    Role,
    Satisfaction,
    Status,
    Ticket,
    TicketEvent,
    TicketFilter,
    Urgency,
)
from tickets.tables import (
    assignments,
    clocks,
    events,
    examples,
    numbers,
    ticket_categories,
    tickets,
)


def next_daily_sequence(conn: Connection, day: str) -> int:
    """Atomically hand out the next sequence number of `day` (YYYYMMDD, local date)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(numbers)
        .values(day=day, last=1)
        .on_conflict_do_update(index_elements=[numbers.c.day], set_={"last": numbers.c.last + 1})
        .returning(numbers.c.last)
    )
    return int(conn.execute(stmt).scalar_one())


def insert_ticket(conn: Connection, new: NewTicket, number: str, now: datetime) -> int:
    values = {
        "number": number,
        "version": 1,
        "status": Status.NEW.value,
        "channel": new.channel.value,
        "kind": new.kind.value,
        "urgency": new.urgency.value,
        "title": new.title,
        "content": new.content,
        "summary": new.summary,
        "category": list(new.category),
        "region": new.region,
        "address": new.address,
        "language": new.language,
        "caller_name": new.caller.name,
        "caller_phone": new.caller.phone,
        "caller_confidential": new.caller.confidential,
        "attachments": list(new.attachments),
        "intake_key": new.intake_key,
        "supervised": False,
        "urge_count": 0,
        "rework_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    return int(conn.execute(_INSERT_TICKET, values).scalar_one())


# built once: a statement made per row (insert().values(row)) costs more CPU than the row
# (SQLAlchemy coerces every value and keys its cache on them); executed with the row as
# parameters, the compiled form is reused
_INSERT_TICKET = tickets.insert().returning(tickets.c.id)
_INSERT_ASSIGNMENT = assignments.insert().returning(assignments.c.id)
_INSERT_EVENT = events.insert().returning(events.c.id)
_INSERT_CLOCK = clocks.insert().returning(clocks.c.id)


def update_ticket(conn: Connection, ticket_id: int, version: int, values: dict[str, Any]) -> bool:
    """Compare-and-set on the version; False when somebody else changed the order first."""
    stmt = (
        tickets.update()
        .where(tickets.c.id == ticket_id, tickets.c.version == version)
        .values(version=tickets.c.version + 1, **values)
    )
    return conn.execute(stmt).rowcount == 1


def _ticket_from_row(row: Any, assigned: Sequence[Assignment] = ()) -> Ticket:
    m = row._mapping
    return Ticket(
        id=m["id"],
        number=m["number"],
        version=m["version"],
        status=Status(m["status"]),
        channel=Channel(m["channel"]),
        kind=Kind(m["kind"]),
        urgency=Urgency(m["urgency"]),
        content=m["content"],
        caller=Caller(m["caller_name"], m["caller_phone"], bool(m["caller_confidential"])),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        title=m["title"],
        summary=m["summary"],
        category=tuple(m["category"] or ()),
        region=m["region"],
        address=m["address"],
        language=m["language"],
        attachments=tuple(m["attachments"] or ()),
        answer=m["answer"],
        answered_at=m["answered_at"],
        satisfaction=Satisfaction(m["satisfaction"]) if m["satisfaction"] else None,
        satisfaction_note=m["satisfaction_note"],
        master_id=m["master_id"],
        supervised=bool(m["supervised"]),
        urge_count=m["urge_count"],
        rework_count=m["rework_count"],
        reply_due=m["reply_due"],
        closed_at=m["closed_at"],
        route_state=m["route_state"],
        suggestion=m["suggestion"],
        assignments=tuple(assigned),
        handling_from=m["handling_from"],
    )


def _assignment_from_row(row: Any) -> Assignment:
    m = row._mapping
    return Assignment(
        id=m["id"],
        ticket_id=m["ticket_id"],
        department=m["department"],
        role=AssignmentRole(m["role"]),
        state=AssignmentState(m["state"]),
        created_at=m["created_at"],
        sign_due=m["sign_due"],
        reply_due=m["reply_due"],
        signed_at=m["signed_at"],
        replied_at=m["replied_at"],
        reply=m["reply"],
        return_reason=m["return_reason"],
        extension_state=ExtensionState(m["extension_state"]),
        extension_until=m["extension_until"],
        extension_reason=m["extension_reason"],
        forwarded_from=m["forwarded_from"],
        ended_at=m["ended_at"],
    )


def _assignments_of(conn: Connection, ticket_ids: Iterable[int]) -> dict[int, list[Assignment]]:
    ids = list(ticket_ids)
    out: dict[int, list[Assignment]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = conn.execute(
        sa.select(assignments)
        .where(assignments.c.ticket_id.in_(ids))
        .order_by(assignments.c.ticket_id, assignments.c.id)
    )
    for row in rows:
        out[row.ticket_id].append(_assignment_from_row(row))
    return out


def get_ticket(conn: Connection, ticket_id: int) -> Ticket | None:
    row = conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).first()
    if row is None:
        return None
    return _ticket_from_row(row, _assignments_of(conn, [row.id])[row.id])


def get_ticket_by_number(conn: Connection, number: str, lock: bool = False) -> Ticket | None:
    """`lock` holds the row until commit (PostgreSQL; SQLite has one writer anyway)."""
    stmt = sa.select(tickets).where(tickets.c.number == number)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        return None
    return _ticket_from_row(row, _assignments_of(conn, [row.id])[row.id])


def get_ticket_by_intake_key(conn: Connection, key: str) -> Ticket | None:
    row = conn.execute(sa.select(tickets).where(tickets.c.intake_key == key)).first()
    if row is None:
        return None
    return _ticket_from_row(row, _assignments_of(conn, [row.id])[row.id])


_ACTIVE = (AssignmentState.PENDING.value, AssignmentState.ACCEPTED.value)


def _filtered(
    stmt: Any, f: TicketFilter, department_scope: str | None, now: datetime | None = None
) -> Any:
    now = now or datetime.now(UTC)
    if f.channel is not None:
        stmt = stmt.where(tickets.c.channel == f.channel.value)
    if f.status is not None:
        stmt = stmt.where(tickets.c.status == f.status.value)
    if f.statuses:
        stmt = stmt.where(tickets.c.status.in_([s.value for s in f.statuses]))
    if f.kind is not None:
        stmt = stmt.where(tickets.c.kind == f.kind.value)
    if f.phone is not None:
        stmt = stmt.where(tickets.c.caller_phone == f.phone)
        if department_scope is not None:
            # a department must not confirm guesses of a confidential caller's number
            stmt = stmt.where(tickets.c.caller_confidential.is_(False))
    if f.supervised is not None:
        stmt = stmt.where(tickets.c.supervised == f.supervised)
    if f.route_state is not None:
        stmt = stmt.where(tickets.c.route_state == f.route_state)
    if f.regions:
        stmt = stmt.where(tickets.c.region.in_(f.regions))
    if f.number_prefix:
        # a range, not LIKE 'p%': SQLite's LIKE is case-folding and cannot use the index
        stmt = stmt.where(*_prefix_range(tickets.c.number, f.number_prefix))
    if f.ids is not None:
        stmt = stmt.where(tickets.c.id.in_(f.ids))
    elif f.q:
        for word in f.q.split():
            like = sa.or_(
                *(
                    col.contains(word, autoescape=True)
                    for col in (
                        tickets.c.content,
                        tickets.c.summary,
                        tickets.c.title,
                        tickets.c.address,
                    )
                )
            )
            stmt = stmt.where(like)
    if f.overdue is not None:
        # a running clock has passed its deadline ⟺ the earliest running deadline has, or a
        # watcher whose clock runs ahead of this process's already marked one overdue (its
        # due_at still ahead here: normally no row, read from a short index range)
        marked_early = tickets.c.id.in_(
            sa.select(clocks.c.ticket_id).where(
                clocks.c.state == ClockState.OVERDUE.value, clocks.c.due_at > now
            )
        )
        due = tickets.c.next_due_at
        if f.overdue:
            stmt = stmt.where(sa.or_(due <= now, marked_early))
        else:
            stmt = stmt.where(sa.or_(due.is_(None), due > now), ~marked_early)
    if f.category:
        stmt = stmt.where(tickets.c.id.in_(_named(f.category)))
    if f.created_from is not None:
        stmt = stmt.where(tickets.c.created_at >= f.created_from)
    if f.created_until is not None:
        stmt = stmt.where(tickets.c.created_at < f.created_until)
    if f.urged is not None:
        stmt = stmt.where((tickets.c.urge_count > 0) if f.urged else (tickets.c.urge_count == 0))
    # conditions on the tasks select order ids from an index of ticket_assignments (IN, not a
    # correlated EXISTS that would probe the tasks of every order in the table)
    if f.extension_requested is not None:
        asked = tickets.c.id.in_(
            sa.select(assignments.c.ticket_id).where(
                assignments.c.extension_state == ExtensionState.REQUESTED.value,
                assignments.c.state.in_(_ACTIVE),
            )
        )
        stmt = stmt.where(asked if f.extension_requested else ~asked)
    for dept in (f.department, department_scope):
        if dept is not None:
            own = [assignments.c.department == dept]
            if f.assignment_states:
                own.append(assignments.c.state.in_([s.value for s in f.assignment_states]))
            stmt = stmt.where(tickets.c.id.in_(sa.select(assignments.c.ticket_id).where(*own)))
    return stmt


def _prefix_range(column: Any, prefix: str) -> tuple[Any, Any]:
    """`column` starts with `prefix`, as a range an index serves."""
    after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return column >= prefix, column < after


def list_tickets(
    conn: Connection,
    f: TicketFilter,
    department_scope: str | None = None,
    now: datetime | None = None,
) -> list[Ticket]:
    """Newest first, or by the earliest live deadline (f.sort == "due": orders without a
    running clock after all the others, newest first); `department_scope` limits to orders
    ever assigned to that department."""
    if f.sort != "due":
        stmt = _filtered(sa.select(tickets), f, department_scope, now)
        stmt = stmt.order_by(tickets.c.id.desc()).limit(f.limit).offset(f.offset)
        return _with_assignments(conn, conn.execute(stmt).all())
    # two ordered reads, each served by an index, instead of one sort over "NULL last"
    timed = _filtered(sa.select(tickets), f, department_scope, now).where(
        tickets.c.next_due_at.is_not(None)
    )
    rows = conn.execute(
        timed.order_by(tickets.c.next_due_at, tickets.c.id.desc()).limit(f.limit).offset(f.offset)
    ).all()
    if len(rows) == f.limit:
        return _with_assignments(conn, rows)
    # the page reaches past the timed orders: how many there are decides the untimed offset
    n_timed = f.offset + len(rows) if rows else _count(conn, timed, f.offset)
    untimed = _filtered(sa.select(tickets), f, department_scope, now).where(
        tickets.c.next_due_at.is_(None)
    )
    rest = conn.execute(
        untimed.order_by(tickets.c.id.desc())
        .limit(f.limit - len(rows))
        .offset(max(0, f.offset - n_timed))
    ).all()
    return _with_assignments(conn, [*rows, *rest])


def _with_assignments(conn: Connection, rows: Sequence[Any]) -> list[Ticket]:
    assigned = _assignments_of(conn, [r.id for r in rows])
    return [_ticket_from_row(r, assigned[r.id]) for r in rows]


def _count(conn: Connection, stmt: Any, limit: int | None) -> int:
    """The rows `stmt` selects, counted up to `limit` (None: all of them)."""
    if limit is None:
        counted = stmt.with_only_columns(sa.func.count()).select_from(tickets).order_by(None)
    else:
        found = stmt.with_only_columns(tickets.c.id).order_by(None).limit(limit).subquery()
        counted = sa.select(sa.func.count()).select_from(found)
    return int(conn.execute(counted).scalar_one())


def count_tickets(
    conn: Connection,
    f: TicketFilter,
    department_scope: str | None = None,
    now: datetime | None = None,
    limit: int | None = None,
) -> int:
    """How many orders match, or `limit` when at least that many do (a list's tab or total
    need not count a million rows to say "1000+")."""
    if department_scope is None and f.category and _only_category(f):
        # the names' index holds one row per order and name: counted there alone, not
        # looked up order by order (an exact API total of 130,000 orders: 3 ms, not 120)
        named = _named(f.category)
        if limit is not None:
            named = named.limit(limit)
        counted = sa.select(sa.func.count()).select_from(named.subquery())
        return int(conn.execute(counted).scalar_one())
    return _count(conn, _filtered(sa.select(tickets.c.id), f, department_scope, now), limit)


def _named(category: str) -> Any:
    """The orders with `category` as one whole name at any level of their path, from the
    names' index (kept by triggers, migration 0720)."""
    return sa.select(ticket_categories.c.ticket_id).where(ticket_categories.c.name == category)


def _only_category(f: TicketFilter) -> bool:
    """No condition but the category (paging and order do not change a count)."""
    bare = dataclasses.replace(f, category=None, sort="new", limit=0, offset=0)
    return bare == TicketFilter(limit=0)


def insert_assignment(
    conn: Connection,
    *,
    ticket_id: int,
    department: str,
    role: AssignmentRole,
    now: datetime,
    sign_due: datetime | None,
    reply_due: datetime | None,
    forwarded_from: int | None = None,
) -> int:
    values = {
        "ticket_id": ticket_id,
        "department": department,
        "role": role.value,
        "state": AssignmentState.PENDING.value,
        "created_at": now,
        "sign_due": sign_due,
        "reply_due": reply_due,
        "extension_state": ExtensionState.NONE.value,
        "forwarded_from": forwarded_from,
    }
    return int(conn.execute(_INSERT_ASSIGNMENT, values).scalar_one())


def update_assignment(conn: Connection, assignment_id: int, values: dict[str, Any]) -> None:
    conn.execute(assignments.update().where(assignments.c.id == assignment_id).values(values))


def cancel_active_assignments(
    conn: Connection, ticket_id: int, now: datetime, department: str | None = None
) -> list[int]:
    """Withdraw the live tasks on an order (only `department`'s, if given)."""
    active = (AssignmentState.PENDING.value, AssignmentState.ACCEPTED.value)
    stmt = sa.select(assignments.c.id).where(
        assignments.c.ticket_id == ticket_id, assignments.c.state.in_(active)
    )
    if department is not None:
        stmt = stmt.where(assignments.c.department == department)
    ids = list(conn.execute(stmt).scalars())
    if ids:
        conn.execute(
            assignments.update()
            .where(assignments.c.id.in_(ids))
            .values(state=AssignmentState.CANCELLED.value, ended_at=now)
        )
    return ids


def insert_event(
    conn: Connection,
    *,
    ticket_id: int,
    at: datetime,
    actor_role: Role,
    actor_id: int | None,
    actor_name: str,
    action: str,
    from_status: Status | None,
    to_status: Status | None,
    reason: str | None = None,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    assignment_id: int | None = None,
) -> TicketEvent:
    old = old or {}
    new = new or {}
    values = {
        "ticket_id": ticket_id,
        "at": at,
        "actor_role": actor_role.value,
        "actor_id": actor_id,
        "actor_name": actor_name,
        "action": action,
        "from_status": from_status.value if from_status else None,
        "to_status": to_status.value if to_status else None,
        "reason": reason,
        "old": old,
        "new": new,
        "assignment_id": assignment_id,
    }
    event_id = int(conn.execute(_INSERT_EVENT, values).scalar_one())
    outbox.enqueue_for_event(conn, ticket_id, event_id, action, at)  # same transaction
    return TicketEvent(
        id=event_id,
        ticket_id=ticket_id,
        at=at,
        actor_role=actor_role,
        actor_id=actor_id,
        actor_name=actor_name,
        action=action,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        old=old,
        new=new,
        assignment_id=assignment_id,
    )


def list_events(conn: Connection, ticket_id: int) -> list[TicketEvent]:
    rows = conn.execute(
        sa.select(events).where(events.c.ticket_id == ticket_id).order_by(events.c.id)
    )
    return _events(rows)


def get_events(conn: Connection, event_ids: Sequence[int]) -> list[TicketEvent]:
    """These events, oldest first (for the consumers of the work queue)."""
    ids = list(event_ids)
    if not ids:
        return []
    return _events(
        conn.execute(sa.select(events).where(events.c.id.in_(ids)).order_by(events.c.id))
    )


def list_events_after(conn: Connection, after_id: int, limit: int) -> list[TicketEvent]:
    """Events with ids after `after_id`, oldest first (a console catching up)."""
    rows = conn.execute(
        sa.select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
    )
    return _events(rows)


def _events(rows: Any) -> list[TicketEvent]:
    return [
        TicketEvent(
            id=r.id,
            ticket_id=r.ticket_id,
            at=r.at,
            actor_role=Role(r.actor_role),
            actor_id=r.actor_id,
            actor_name=r.actor_name,
            action=r.action,
            from_status=Status(r.from_status) if r.from_status else None,
            to_status=Status(r.to_status) if r.to_status else None,
            reason=r.reason,
            old=r.old,
            new=r.new,
            assignment_id=r.assignment_id,
        )
        for r in rows
    ]


def _clock(row: Any) -> Clock:
    m = row._mapping
    return Clock(
        id=m["id"],
        ticket_id=m["ticket_id"],
        assignment_id=m["assignment_id"],
        kind=ClockKind(m["clock"]),
        state=ClockState(m["state"]),
        start_at=m["start_at"],
        warn_at=m["warn_at"],
        due_at=m["due_at"],
        next_at=m["next_at"],
    )


def live_clocks_of(conn: Connection, ticket_ids: Iterable[int]) -> dict[int, list[Clock]]:
    """The running clocks of several orders (one query, for a page of a list)."""
    ids = list(ticket_ids)
    out: dict[int, list[Clock]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = conn.execute(
        sa.select(clocks)
        .where(clocks.c.ticket_id.in_(ids), clocks.c.state != ClockState.STOPPED.value)
        .order_by(clocks.c.ticket_id, clocks.c.id)
    )
    for row in rows:
        out[row.ticket_id].append(_clock(row))
    return out


def count_due_between(conn: Connection, start: datetime, end: datetime) -> int:
    stmt = sa.select(sa.func.count(sa.distinct(clocks.c.ticket_id))).where(
        clocks.c.state != ClockState.STOPPED.value,
        clocks.c.due_at >= start,
        clocks.c.due_at < end,
    )
    return int(conn.execute(stmt).scalar_one())


def count_created_between(conn: Connection, start: datetime, end: datetime) -> int:
    stmt = sa.select(sa.func.count()).where(
        tickets.c.created_at >= start, tickets.c.created_at < end
    )
    return int(conn.execute(stmt).scalar_one())


def list_live_clocks(conn: Connection, ticket_id: int) -> list[Clock]:
    rows = conn.execute(
        sa.select(clocks).where(
            clocks.c.ticket_id == ticket_id, clocks.c.state != ClockState.STOPPED.value
        )
    )
    return [_clock(r) for r in rows]


def list_clocks(conn: Connection, ticket_id: int) -> list[Clock]:
    rows = conn.execute(
        sa.select(clocks).where(clocks.c.ticket_id == ticket_id).order_by(clocks.c.id)
    )
    return [_clock(r) for r in rows]


def insert_clock(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(_INSERT_CLOCK, values).scalar_one())


def update_clock(conn: Connection, clock_id: int, values: dict[str, Any]) -> None:
    conn.execute(clocks.update().where(clocks.c.id == clock_id).values(values))


def set_next_due(conn: Connection, ticket_id: int, due: datetime | None) -> None:
    """The order's earliest running deadline (derived from its clocks: no version change)."""
    conn.execute(tickets.update().where(tickets.c.id == ticket_id).values(next_due_at=due))


def refresh_next_due(conn: Connection) -> int:
    """Recompute every order's earliest running deadline from its clocks (migration 0700, and
    stores filled by writing clocks directly); returns the orders that have one."""
    running = sa.and_(
        clocks.c.ticket_id == tickets.c.id, clocks.c.state != ClockState.STOPPED.value
    )
    earliest = sa.select(sa.func.min(clocks.c.due_at)).where(running).scalar_subquery()
    conn.execute(
        tickets.update().where(tickets.c.next_due_at.is_not(None)).values(next_due_at=None)
    )
    done = conn.execute(
        tickets.update().where(sa.exists().where(running)).values(next_due_at=earliest)
    )
    return int(done.rowcount)


def due_clocks(conn: Connection, now: datetime, limit: int) -> list[Clock]:
    """Clocks whose next look is due, oldest first, read from the partial index on next_at.

    On PostgreSQL the rows are locked and rows locked by another watcher are skipped, so
    several processes can watch at once without firing a clock twice.
    """
    stmt = (
        sa.select(clocks)
        .where(clocks.c.next_at.is_not(None), clocks.c.next_at <= now)
        .order_by(clocks.c.next_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return [_clock(r) for r in conn.execute(stmt)]


def lock_free_tickets(conn: Connection, ticket_ids: Iterable[int]) -> set[int]:
    """Of these orders, those whose rows this transaction now holds, skipping the rows another
    transaction holds (PostgreSQL; SQLite has one writer, so all of them)."""
    ids = sorted(set(ticket_ids))
    if not ids or conn.dialect.name != "postgresql":
        return set(ids)
    stmt = (
        sa.select(tickets.c.id)
        .where(tickets.c.id.in_(ids))
        .order_by(tickets.c.id)
        .with_for_update(skip_locked=True)
    )
    return set(conn.execute(stmt).scalars())


def bump_ticket(conn: Connection, ticket_id: int, values: dict[str, Any]) -> None:
    """A system change (deadline watcher) that must not lose to a user's: no version check,
    but the version still moves so a user acting on the old version gets 409."""
    conn.execute(
        tickets.update()
        .where(tickets.c.id == ticket_id)
        .values(version=tickets.c.version + 1, **values)
    )


def insert_example(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(examples.insert().values(values))


def list_examples(conn: Connection) -> list[tuple[str, list[str], str | None, str]]:
    """(text, category path, department, source), oldest first."""
    rows = conn.execute(
        sa.select(
            examples.c.text, examples.c.category, examples.c.department, examples.c.source
        ).order_by(examples.c.id)
    )
    return [(r.text, list(r.category or []), r.department, r.source) for r in rows]


def update_untriaged(
    conn: Connection, ticket_id: int, version: int, values: dict[str, Any]
) -> bool:
    """Compare-and-set of the triage's routing: only an order at `version`, still new and
    still waiting for the triage (set_triage keeps the version: the pending state is checked
    too). False when somebody acted first."""
    stmt = (
        tickets.update()
        .where(
            tickets.c.id == ticket_id,
            tickets.c.version == version,
            tickets.c.status == Status.NEW.value,
            tickets.c.route_state == "pending",
        )
        .values(version=tickets.c.version + 1, **values)
    )
    return conn.execute(stmt).rowcount == 1


def set_triage(
    conn: Connection, ticket_id: int, route_state: str, suggestion: dict[str, Any] | None
) -> bool:
    """Record the triage outcome on an order still waiting for it (no version change: the
    suggestion is advice, not a change people act on)."""
    stmt = (
        tickets.update()
        .where(tickets.c.id == ticket_id, tickets.c.route_state == "pending")
        .values(route_state=route_state, suggestion=suggestion)
    )
    return conn.execute(stmt).rowcount == 1


def get_tickets(
    conn: Connection, ticket_ids: Sequence[int], *, untriaged: bool = False
) -> list[Ticket]:
    """These orders with their assignments, in one round of queries (`untriaged`: only those
    still new and waiting for the triage)."""
    ids = list(ticket_ids)
    if not ids:
        return []
    stmt = sa.select(tickets).where(tickets.c.id.in_(ids)).order_by(tickets.c.id)
    if untriaged:
        stmt = stmt.where(tickets.c.route_state == "pending", tickets.c.status == Status.NEW.value)
    rows = conn.execute(stmt).all()
    assigned = _assignments_of(conn, [r.id for r in rows])
    return [_ticket_from_row(r, assigned[r.id]) for r in rows]
