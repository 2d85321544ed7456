"""SQL table of call records (one row per call: the source of the call-centre KPIs)."""

from __future__ import annotations

import sqlalchemy as sa

from tickets.tables import BigId, UTCDateTime, metadata

calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # our call id (uuid hex)
    sa.Column("direction", sa.String(8), nullable=False),  # in | out
    sa.Column("purpose", sa.String(16), nullable=False),  # intake | callback | survey
    sa.Column("caller", sa.String(64), nullable=False),
    sa.Column("dialled", sa.String(64), nullable=False),
    sa.Column("worker", sa.Integer, nullable=False),
    sa.Column("language", sa.String(8)),
    sa.Column("ivr_path", sa.String(400), nullable=False),
    sa.Column("kind", sa.String(16)),
    sa.Column("offered_at", UTCDateTime, nullable=False),
    sa.Column("queued_at", UTCDateTime),
    sa.Column("answered_at", UTCDateTime),
    sa.Column("ended_at", UTCDateTime),
    # answered | abandoned | voicemail | ivr | rejected | failed | survey | callback
    sa.Column("outcome", sa.String(16)),
    sa.Column("agent", sa.String(64)),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id")),
    sa.Column("recording", sa.String(300)),
    sa.Column("recording_purged", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_calls_offered", "offered_at"),
    sa.Index("ix_calls_caller", "caller", "offered_at"),
    sa.Index("ix_calls_ticket", "ticket_id"),
)

# Incoming messages, one row per gateway delivery key: a redelivered message finds its row.
sms_inbox = sa.Table(
    "sms_inbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(120), nullable=False, unique=True),
    sa.Column("sender", sa.String(32), nullable=False),
    sa.Column("receiver", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    # new | supplement | survey | stop | blocked | limited
    sa.Column("handled_as", sa.String(16), nullable=False),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id")),
    sa.Index("ix_sms_inbox_sender", "sender", "received_at"),
)

# Outgoing messages: written before anything is sent (the outbox), sent in id order per
# recipient, retried with back-off; delivery reports update them.
sms_outbox = sa.Table(
    "sms_outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("recipient", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id")),
    # queued | sending | sent | delivered | failed | kept (embedded outbox: shown, never sent) |
    # folded (an acknowledgement carried by the message folded_into) | limited (over the
    # per-number daily cap: kept, never sent)
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("last_error", sa.String(300)),
    sa.Column("dedupe", sa.String(120), unique=True),  # one notice per (purpose, event)
    # An acknowledgement that carries others: acknowledgements to its recipient due before this
    # time are folded into it while it is unsent, else into the next one, held until then.
    sa.Column("fold_until", UTCDateTime),
    sa.Column("folded_into", BigId),  # status folded: the message that carries this notice
    sa.Index("ix_sms_outbox_due", "status", "next_at", "id"),
    sa.Index("ix_sms_outbox_recipient", "recipient", "id"),
    sa.Index("ix_sms_outbox_folded_into", "folded_into"),
)

# One row per citizen's number: its notices are decided under this row's lock (fold or send,
# the daily cap), so several writers (threads, processes) never decide them at once.
sms_recipient_locks = sa.Table(
    "sms_recipient_locks",
    metadata,
    sa.Column("phone", sa.String(32), primary_key=True),
    sa.Column("locked_at", UTCDateTime, nullable=False),
)

sms_blocklist = sa.Table(
    "sms_blocklist",
    metadata,
    sa.Column("phone", sa.String(32), primary_key=True),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Numbers that answered TD / STOP: no more survey messages.
sms_optout = sa.Table(
    "sms_optout",
    metadata,
    sa.Column("phone", sa.String(32), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Signatures of webhook requests taken within the last two time windows: the same signed request
# again is a replay, refused (older ones are refused by their timestamp anyway).
sms_webhook_seen = sa.Table(
    "sms_webhook_seen",
    metadata,
    sa.Column("signature", sa.String(64), primary_key=True),
    sa.Column("seen_at", UTCDateTime, nullable=False),
    sa.Index("ix_sms_webhook_seen_at", "seen_at"),
)

# Call-centre counts per hour (hours since the epoch, UTC), kept up to date with every call
# record change and agent state change: the statistics read hours, not calls.
CALL_HOUR_MEASURES = (
    "offered",  # inbound calls
    "queued",  # … that asked for an agent
    "answered",  # … answered by an agent
    "answered_fast",  # … within the answer target (15 s)
    "abandoned",  # … hung up while queued
    "voicemail",  # … left a voicemail
    "wait_ms",  # total wait of answered and abandoned callers
    "waits",
    "talk_ms",  # total talk time of answered calls
    "talks",
    "callbacks",  # outbound call-backs to citizens
    "callbacks_answered",
    "surveys",  # outbound 回访 calls
    "staffed_ms",  # agents signed in
    "busy_ms",  # agents talking or in wrap-up
)
call_hours = sa.Table(
    "stats_call_hours",
    metadata,
    sa.Column("hour", sa.Integer, primary_key=True, autoincrement=False),
    *[sa.Column(m, sa.BigInteger, nullable=False, server_default="0") for m in CALL_HOUR_MEASURES],
)
