"""Retention in the telephony records: call recordings past their days (the call record stays,
marked), citizens' numbers in old call records, and SMS bodies and numbers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Connection

from telephony import sms_store
from telephony import store as call_store
from tickets import privacy_store
from tickets.db import Database
from tickets.retention import MARK

PURGED = {"recording_purged": True}


def purge_recordings(
    db: Database, before: datetime, now: datetime, *, dry_run: bool = False, limit: int = 500
) -> int:
    """Recordings of calls offered before `before`: the file deleted, then the call record
    (and a voicemail order's attachment entry) marked; a crash between the two leaves the
    record unmarked, and the next run marks it. Returns how many (would) go."""
    if dry_run:
        return db.run_read(lambda c: call_store.count_recordings_before(c, before))
    done = 0
    while True:
        old = db.run_read(lambda c: call_store.list_recordings_before(c, before, limit))
        if not old:
            return done
        for rec in old:
            if rec.recording:
                Path(rec.recording).unlink(missing_ok=True)

            def tx(
                conn: Connection, call_id: str = rec.id, path: str | None = rec.recording
            ) -> None:
                call_store.update_call(conn, call_id, PURGED)
                row = call_store.get_call(conn, call_id)
                if row is not None and row.ticket_id is not None and path:
                    _mark_attachment(conn, row.ticket_id, path, now)

            db.run_write(tx)
            done += 1


def _mark_attachment(conn: Connection, ticket_id: int, path: str, now: datetime) -> None:
    order = privacy_store.get_order_row(conn, ticket_id)
    if order is None:
        return
    entries = order["attachments"] or []
    marked = [
        {**e, "purged_at": now.isoformat()}
        if e.get("type") == "recording" and e.get("path") == path and not e.get("purged_at")
        else e
        for e in entries
    ]
    if marked != entries:
        privacy_store.set_attachments(conn, ticket_id, marked)


def redact_call_numbers(db: Database, before: datetime, *, dry_run: bool) -> int:
    if dry_run:
        return db.run_read(lambda c: call_store.redact_old_numbers(c, before, MARK, dry_run=True))
    return db.run_write(lambda c: call_store.redact_old_numbers(c, before, MARK, dry_run=False))


def redact_sms(db: Database, before: datetime, *, numbers: bool, dry_run: bool) -> int:
    """SMS bodies (or, with `numbers`, senders and recipients) older than `before`."""

    def run(conn: Connection) -> int:
        return sms_store.redact_old_messages(conn, before, MARK, numbers=numbers, dry_run=dry_run)

    return db.run_read(run) if dry_run else db.run_write(run)
