"""Retention of work orders: once a finished order (closed, merged) is old enough, its files go
and then its personal data: the caller's name, phone and address and the request's details
are replaced by a marker, while everything statistics read stays (channel, kind, urgency,
category, region, departments and their tasks' states and times, deadlines, satisfaction, and
each audit event's who, what and when).

Idempotent: an order is marked (files_purged_at, purged_at) in the transaction that purges it,
so a second run finds nothing; a file is deleted before that transaction, so a crash between
the two leaves a mark-less order whose next run finishes the job (never a marked order whose
file lingers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from tickets import privacy_store as pstore
from tickets import store
from tickets.db import Database
from tickets.model import SYSTEM, EventType, Status

log = logging.getLogger(__name__)

MARK = "〔已按保存期限清除〕"
BATCH = 200

# keys of audit-event details and triage suggestions that hold codes, enums, numbers or times:
# kept; any other key's value (texts people wrote: answers, replies, supplements, addresses,
# summaries, file names) becomes MARK, so a detail added later is purged unless listed here
_KEEP = frozenset(
    {
        "channel",
        "number",
        "departments",
        "lead",
        "assists",
        "reply_due",
        "requested_until",
        "assignment_state",
        "role",
        "satisfaction",
        "master",
        "duplicate",
        "supervised",
        "urge_count",
        "kind",
        "urgency",
        "category",
        "region",
        "department",
        "clock",
        "due_at",
        "media_type",
        "size",
        "confidence",
        "answerable",
        "model_version",
        "scope",
        "files",
    }
)
# nested details: only these of their keys stay
_NESTED = {
    "region": frozenset({"code", "name", "level"}),
    "department": frozenset({"department", "department_name", "region"}),
    "top3": frozenset({"label", "probability"}),
}
# what an attachment entry keeps once its order is purged (no file name, path, hash or number)
_ATTACHMENT_KEEP = frozenset({"type", "media_type", "size", "seconds", "at", "by", "purged_at"})


def redact_detail(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    """An event's old/new (or a triage suggestion) with its personal content replaced."""
    if detail is None:
        return None
    out: dict[str, Any] = {}
    for key, value in detail.items():
        nested = _NESTED.get(key)
        if value is None:
            out[key] = None
        elif nested is not None and isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if k in nested}
        elif nested is not None and isinstance(value, list):
            out[key] = [
                {k: v for k, v in x.items() if k in nested} if isinstance(x, dict) else x
                for x in value
            ]
        elif key in _KEEP:
            out[key] = value
        else:
            out[key] = MARK
    return out


def _marked(value: str | None) -> str | None:
    return MARK if value else value


@dataclass(slots=True)
class OrderReport:
    orders: int = 0  # orders whose personal data went (or would go)
    events: int = 0  # audit events whose personal content went
    examples: int = 0  # classifier examples taken from those orders
    file_orders: int = 0  # orders whose files went
    files: int = 0  # files deleted (attachments and recordings still on disk)


class OrderRetention:
    """Purges finished orders; `attachment_path` is where an attachment's bytes live (the
    composition root knows the file store)."""

    def __init__(self, db: Database, attachment_path: Callable[[str], Path]) -> None:
        self.db = db
        self.attachment_path = attachment_path

    # -- files --------------------------------------------------------------------------------
    def _files_of(self, conn: Connection, row: dict[str, Any], batch: set[int]) -> list[Path]:
        """The order's files still on disk that no other live order shares."""
        if row["files_purged_at"] is not None:
            return []
        out = []
        for entry in row["attachments"] or []:
            if entry.get("purged_at"):
                continue
            if entry.get("type") == "recording" and entry.get("path"):
                out.append(Path(str(entry["path"])))
            elif entry.get("sha256"):
                sha = str(entry["sha256"])
                if not pstore.sha_in_use(conn, sha, batch | {row["id"]}):
                    out.append(self.attachment_path(sha))
        return [p for p in out if p.exists()]

    def _ids(
        self, before: datetime, mark: str, not_before: datetime | None = None
    ) -> list[list[int]]:
        pages: list[list[int]] = []
        after = 0
        while True:
            find = partial(
                pstore.finished_before,
                before=before,
                mark=mark,
                limit=BATCH,
                after_id=after,
                not_before=not_before,
            )
            ids = self.db.run_read(find)
            if not ids:
                return pages
            pages.append(ids)
            after = ids[-1]

    def purge_files(
        self,
        before: datetime,
        now: datetime,
        *,
        dry_run: bool,
        not_before: datetime | None = None,
    ) -> OrderReport:
        """Files of orders finished before `before`: deleted; their entries stay, marked.
        Orders finished before `not_before` are the personal-data purge's (run first: it takes
        their files too), so a dry run counts each file once."""
        report = OrderReport()
        for ids in self._ids(before, "files_purged_at", not_before):
            for ticket_id in ids:
                n = self._purge_order_files(ticket_id, set(ids), now, dry_run)
                if n:
                    report.file_orders += 1
                    report.files += n
        return report

    def _purge_order_files(self, ticket_id: int, batch: set[int], now: datetime, dry: bool) -> int:
        row = self.db.run_read(partial(pstore.get_order_row, ticket_id=ticket_id))
        if row is None or row["files_purged_at"] is not None:
            return 0
        files = self.db.run_read(lambda c: self._files_of(c, row, batch))
        if dry:
            return len(files)
        for path in files:
            path.unlink(missing_ok=True)

        def tx(conn: Connection) -> None:
            fresh = pstore.get_order_row(conn, ticket_id)
            if fresh is None or fresh["files_purged_at"] is not None:
                return
            kept = [
                {**e, "purged_at": now.isoformat()} if e.get("type") in ("file", "recording") else e
                for e in fresh["attachments"] or []
            ]
            pstore.update_order(conn, ticket_id, {"attachments": kept, "files_purged_at": now})
            if files:
                _purge_event(conn, fresh, now, {"scope": "files", "files": len(files)})

        self.db.run_write(tx)
        return len(files)

    # -- personal data --------------------------------------------------------------------------
    def purge_personal(self, before: datetime, now: datetime, *, dry_run: bool) -> OrderReport:
        """Orders finished before `before`: identity and details replaced, files deleted."""
        report = OrderReport()
        for ids in self._ids(before, "purged_at"):
            for ticket_id in ids:
                self._purge_order_personal(ticket_id, set(ids), now, dry_run, report)
        return report

    def _purge_order_personal(
        self, ticket_id: int, batch: set[int], now: datetime, dry: bool, report: OrderReport
    ) -> None:
        row = self.db.run_read(partial(pstore.get_order_row, ticket_id=ticket_id))
        if row is None or row["purged_at"] is not None:
            return
        files = self.db.run_read(lambda c: self._files_of(c, row, batch))
        if dry:
            details = self.db.run_read(partial(pstore.event_details, ticket_id=ticket_id))
            report.events += sum(_redacted(ev) is not None for ev in details)
            report.examples += self.db.run_read(
                partial(pstore.count_examples_of, ticket_id=ticket_id)
            )
        else:
            for path in files:
                path.unlink(missing_ok=True)
            events, examples = self.db.run_write(
                partial(_purge_order, ticket_id=ticket_id, now=now, files=len(files))
            )
            report.events += events
            report.examples += examples
        report.orders += 1
        report.files += len(files)
        report.file_orders += bool(files)


def _purge_event(conn: Connection, row: dict[str, Any], now: datetime, new: dict[str, Any]) -> None:
    status = Status(row["status"])
    store.insert_event(
        conn,
        ticket_id=row["id"],
        at=now,
        actor_role=SYSTEM.role,
        actor_id=None,
        actor_name=SYSTEM.label,
        action=EventType.PURGE,
        from_status=status,
        to_status=status,
        new=new,
    )


def _redacted(ev: dict[str, Any]) -> dict[str, Any] | None:
    """An event's reason/old/new without personal content; None when it has none."""
    values = {
        "reason": _marked(ev["reason"]),
        "old": redact_detail(ev["old"]) or {},
        "new": redact_detail(ev["new"]) or {},
    }
    return None if values == {k: ev[k] for k in ("reason", "old", "new")} else values


def _purge_order(conn: Connection, ticket_id: int, now: datetime, files: int) -> tuple[int, int]:
    """One order's personal data, in one transaction: (events redacted, examples removed)."""
    row = pstore.get_order_row(conn, ticket_id)
    if row is None or row["purged_at"] is not None:
        return 0, 0
    attachments = [
        {k: v for k, v in e.items() if k in _ATTACHMENT_KEEP}
        | ({"purged_at": now.isoformat()} if e.get("type") in ("file", "recording") else {})
        for e in row["attachments"] or []
    ]
    pstore.update_order(
        conn,
        ticket_id,
        {
            "caller_name": _marked(row["caller_name"]),
            "caller_phone": None,
            "address": _marked(row["address"]),
            "title": _marked(row["title"]),
            "content": MARK,
            "summary": _marked(row["summary"]),
            "answer": _marked(row["answer"]),
            "satisfaction_note": _marked(row["satisfaction_note"]),
            "suggestion": redact_detail(row["suggestion"]),
            "attachments": attachments,
            "intake_key": None,
            "purged_at": now,  # first: the events' trigger lets only a purged order's change
            "files_purged_at": row["files_purged_at"] or now,
        },
    )
    for a in pstore.assignment_texts(conn, ticket_id):
        texts = {k: _marked(a[k]) for k in ("reply", "return_reason", "extension_reason")}
        pstore.update_assignment_texts(conn, a["id"], texts)
    redacted = 0
    for ev in pstore.event_details(conn, ticket_id):
        values = _redacted(ev)
        if values is not None:
            pstore.update_event_details(conn, ev["id"], values)
            redacted += 1
    examples = pstore.delete_examples_of(conn, ticket_id)
    _purge_event(conn, row, now, {"scope": "personal", "files": files})
    log.debug("order %s: personal data purged (%d events)", row["number"], redacted)
    return redacted, examples
