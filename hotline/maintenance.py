"""`hotline purge`: apply the [retention] periods across the packages, or (dry run) count what
they would remove. Idempotent: a second run right after the first removes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agent_ui.uploads import FileStore
from hotline.config import Settings
from telephony import retention as telephony_retention
from tickets import privacy_store
from tickets.db import Database
from tickets.retention import OrderRetention


def years_before(now: datetime, years: int) -> datetime:
    """The same moment `years` calendar years earlier (29 February → 28 February)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def cutoffs(settings: Settings, now: datetime) -> dict[str, datetime]:
    """Data older than these goes (what each period means: config.toml [retention])."""
    r = settings.retention
    return {
        "recordings": now - timedelta(days=settings.telephony.recording_retention_days),
        "attachments": years_before(now, r.attachment_years),
        "personal_data": years_before(now, r.personal_data_years),
        "sms_bodies": now - timedelta(days=r.sms_body_days),
        "access_log": years_before(now, r.access_log_years),
    }


def purge(
    settings: Settings, db: Database, *, now: datetime | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Everything past its retention period, in one report (counts of what went, or would)."""
    now = now or datetime.now(UTC)
    cut = cutoffs(settings, now)
    att = settings.attachments
    files = FileStore(settings.resolve(att.dir), att.max_bytes, list(att.types))
    orders = OrderRetention(db, files.path)
    recordings = telephony_retention.purge_recordings(db, cut["recordings"], now, dry_run=dry_run)
    # personal data first (it takes the order's files too), then the files of the younger
    # orders past the attachment period
    before = cut["personal_data"]
    personal = orders.purge_personal(before, now, dry_run=dry_run)
    order_files = orders.purge_files(cut["attachments"], now, dry_run=dry_run, not_before=before)
    call_numbers = telephony_retention.redact_call_numbers(db, before, dry_run=dry_run)
    sms_numbers = telephony_retention.redact_sms(db, before, numbers=True, dry_run=dry_run)
    sms_bodies = telephony_retention.redact_sms(
        db, cut["sms_bodies"], numbers=False, dry_run=dry_run
    )
    if dry_run:
        access = db.run_read(lambda c: privacy_store.count_access_before(c, cut["access_log"]))
    else:
        access = db.run_write(lambda c: privacy_store.delete_access_before(c, cut["access_log"]))
    return {
        "dry_run": dry_run,
        "at": now.isoformat(timespec="seconds"),
        "cutoffs": {k: v.isoformat(timespec="seconds") for k, v in cut.items()},
        "recordings": recordings,
        "order_files": {"orders": order_files.file_orders, "files": order_files.files},
        "personal_data": {
            "orders": personal.orders,
            "events": personal.events,
            "examples": personal.examples,
            "files": personal.files,
        },
        "call_numbers": call_numbers,
        "sms_numbers": sms_numbers,
        "sms_bodies": sms_bodies,
        "access_log": access,
    }
