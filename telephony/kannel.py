"""Kannel 1.4.5 SMS gateway for the hotline: the platform's side of the contract and kannel.conf
generation (telephony/kannel_run.py runs it)."""

from __future__ import annotations

import re
from pathlib import Path

# --- the platform's side of the contract ------------------------------------------------------

# Where Kannel's sms-service delivers every MO message (GET; the platform also accepts POST).
MO_PATH = "/api/v1/sms/kannel"
# Kannel escape codes in the MO URL: %p sender (the citizen), %P receiver (our service number),
# %a the text, %C its charset, %c its coding (0 7-bit/text, 1 8-bit, 2 UCS-2), %I Kannel's
# message id (a UUID, the same on every smsbox retry of one message: the platform dedupes on it).
MO_QUERY = "from=%p&to=%P&text=%a&charset=%C&coding=%c&id=%I"
# Delivery reports: %d the DLR type (1 delivered, 2 failed, 4 buffered, 8 accepted by the SMSC,
# 16 rejected by the SMSC), %A the SMSC's answer, %T its time (Unix seconds), %i the smsc-id.
# %I is NOT the id of the sent message (each DLR has an id of its own): put the platform's own
# reference into the dlr-url of every message instead (see kannel_dlr_url()).
DLR_QUERY = "type=%d&to=%p&from=%P&smsc=%i&answer=%A&ts=%T"
DEFAULT_PLATFORM_URL = "http://127.0.0.1:8080"
DEFAULT_SMS_URL = f"{DEFAULT_PLATFORM_URL}{MO_PATH}?{MO_QUERY}"
DEFAULT_DLR_URL = f"{DEFAULT_PLATFORM_URL}{MO_PATH}/dlr"

# DLR types (the bits of dlr-mask). 31 asks for all of them.
DLR_DELIVERED = 1
DLR_FAILED = 2
DLR_BUFFERED = 4
DLR_SMSC_ACK = 8
DLR_SMSC_REJECT = 16
DLR_ALL = 31

# Kannel's log levels (-v on the command line, log-level in the config).
LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_PANIC = 0, 1, 2, 3, 4

CONF_NAME = "kannel.conf"


def mo_url(platform_url: str = DEFAULT_PLATFORM_URL, token: str = "") -> str:
    """The sms-service get-url for a platform at platform_url (scheme://host:port); with the
    platform's [sms] gateway_token when it has one (letters, digits, . _ ~ - only: Kannel
    would read a % as one of its escape codes)."""
    if token and not _PLAIN_REF.fullmatch(token):
        raise ValueError("gateway token must be letters, digits, . _ ~ -")
    extra = f"&token={token}" if token else ""
    return f"{platform_url.rstrip('/')}{MO_PATH}?{MO_QUERY}{extra}"


_PLAIN_REF = re.compile(r"[A-Za-z0-9._~-]{1,64}")


def kannel_dlr_url(base: str, ref: str | None = None) -> str:
    """A dlr-url for one sent message: `base` plus the Kannel escape codes of DLR_QUERY, and the
    platform's own reference as `ref` (the whole URL is URL-encoded once more when it goes into
    the sendsms query).

    Kannel reads every `%` in a dlr-url as the start of an escape code, also inside a
    percent-encoded value (`%BF` becomes %B, the empty billing info, then `F`): `ref` and `base`
    must therefore need no percent-encoding (ref: letters, digits, `.`, `_`, `~`, `-`).
    """
    if "%" in base:
        raise ValueError(f"no '%' in a dlr-url base: Kannel would take it for an escape: {base!r}")
    if ref is not None and not _PLAIN_REF.fullmatch(ref):
        raise ValueError(f"dlr ref {ref!r}: use 1-64 of A-Z a-z 0-9 . _ ~ - (no %-encoding)")
    sep = "&" if "?" in base else "?"
    ref_part = "" if ref is None else f"ref={ref}&"
    return f"{base}{sep}{ref_part}{DLR_QUERY}"


def _quote(value: str) -> str:
    """A Kannel config string. The parser has no escapes: a quote or newline cannot be put in."""
    if '"' in value or "\n" in value or "\r" in value:
        raise ValueError(f"cannot put {value!r} in a Kannel config string")
    return f'"{value}"'


# --- kannel.conf ------------------------------------------------------------------------------


def render_fake_smsc_group(port: int, *, smsc_id: str = "fake", host: str = "127.0.0.1") -> str:
    """An smsc group of type `fake`: bearerbox listens on host:port for ONE fakesmsc client at a
    time (Kannel's test SMSC, /usr/lib/kannel/test/fakesmsc). Tests only; in production an
    operator passes the group of the real SMSC (smpp, http, at...) as render_kannel(smsc_group=)."""
    return f"""# Test SMSC: fakesmsc connects here (one client at a time) and exchanges one line per
# message: `sender receiver type data`. It also fakes delivery reports (DLR 8 then 1).
group = smsc
smsc = fake
smsc-id = {_quote(smsc_id)}
port = {port}
our-host = {_quote(host)}
connect-allow-ip = {_quote(host)}
"""


def render_kannel(
    *,
    bearerbox_admin_port: int,
    smsbox_port: int,
    smsbox_bearer_port: int,
    fake_smsc_port: int | None = None,
    smsc_group: str | None = None,
    sms_url: str = DEFAULT_SMS_URL,
    dlr_url: str | None = DEFAULT_DLR_URL,
    username: str = "hotline",
    password: str,
    sender: str = "12345",
    admin_password: str | None = None,
    work_dir: Path | str,
    log_level: int = LOG_INFO,
    interface: str = "127.0.0.1",
    allow_ip: str = "127.0.0.1",
    max_messages: int = 10,
    http_retries: int = 20,
    http_retry_delay_s: int = 15,
) -> str:
    """Return one kannel.conf for bearerbox and smsbox.

    bearerbox_admin_port: HTTP admin/status; smsbox_port: the sendsms HTTP port the platform
    sends through; smsbox_bearer_port: smsbox ↔ bearerbox. fake_smsc_port: add a `fake` smsc
    group there (tests); smsc_group: the text of the operator's real smsc group(s) instead (or as
    well). sms_url: where every MO message goes (with Kannel escape codes, see MO_QUERY);
    dlr_url: default dlr-url of the sendsms user, used when a request sets dlr-mask but no
    dlr-url (None: no default). username/password: the sendsms user; sender: its default `from`
    (the hotline's service number) when a request has none. admin_password: for the admin and
    status pages (default: password). work_dir: logs and the message store. log_level: 0 debug …
    4 panic. interface: the address every port binds to; allow_ip: who may use admin, sendsms
    and the box port (Kannel list syntax, `;`-separated, `*` wildcards). max_messages: at most
    this many SMS parts per sendsms request: Kannel CUTS a longer text to that many parts
    and still answers 202, so the platform must keep texts within max_messages × 67 UCS-2
    (× 153 GSM) characters itself. http_retries /
    http_retry_delay_s: how often and how far apart smsbox retries an MO or DLR request the
    platform did not answer with 200/202.
    """
    if fake_smsc_port is None and smsc_group is None:
        raise ValueError("Kannel needs an SMSC: give fake_smsc_port or smsc_group")
    if not 0 <= log_level <= 4:
        raise ValueError("log_level is 0 (debug) … 4 (panic)")
    if max_messages < 1:
        raise ValueError("max_messages must be at least 1")
    work = Path(work_dir).resolve()
    admin_pw = admin_password if admin_password is not None else password
    if "&" in password or "&" in username:
        raise ValueError("'&' in the sendsms username or password breaks the sendsms query")

    smscs = []
    if fake_smsc_port is not None:
        smscs.append(render_fake_smsc_group(fake_smsc_port, host=interface))
    if smsc_group is not None:
        smscs.append(smsc_group.strip() + "\n")
    dlr_line = (
        f"# Used when a request has dlr-mask but no dlr-url of its own.\n"
        f"dlr-url = {_quote(kannel_dlr_url(dlr_url))}\n"
        if dlr_url
        else ""
    )

    return f"""#
# 12345 hotline SMS gateway (generated by telephony/kannel.py; edits are overwritten).
# bearerbox talks to the SMSC(s) below; smsbox takes the platform's sendsms requests (MT) and
# forwards every incoming message (MO) to the platform's sms-service URL.
# Run: bearerbox -v {log_level} {CONF_NAME}; then smsbox -v {log_level} {CONF_NAME}.

group = core
admin-port = {bearerbox_admin_port}
admin-interface = {_quote(interface)}
admin-password = {_quote(admin_pw)}
status-password = {_quote(admin_pw)}
admin-deny-ip = "*.*.*.*"
admin-allow-ip = {_quote(allow_ip)}
smsbox-port = {smsbox_bearer_port}
smsbox-interface = {_quote(interface)}
box-deny-ip = "*.*.*.*"
box-allow-ip = {_quote(allow_ip)}
log-file = {_quote(str(work / "bearerbox.log"))}
log-level = {log_level}
access-log = {_quote(str(work / "bearerbox-access.log"))}
# Pending delivery reports are kept in memory: a restart of bearerbox forgets the ones not yet
# reported (the messages themselves are in the store below).
dlr-storage = internal
# Every message bearerbox has accepted (MT from smsbox, MO from the SMSC) is written here until
# it has been handed on, so messages queued while the SMSC or smsbox is away survive a
# restart of the gateway and are sent once it is back.
store-type = file
store-location = {_quote(str(work / "kannel.store"))}
# Phones send long texts as concatenated parts: reassemble them into one MO message.
sms-combine-concatenated-mo = true

{chr(10).join(smscs)}
group = smsbox
bearerbox-host = {_quote(interface)}
bearerbox-port = {smsbox_bearer_port}
sendsms-port = {smsbox_port}
sendsms-interface = {_quote(interface)}
log-file = {_quote(str(work / "smsbox.log"))}
log-level = {log_level}
access-log = {_quote(str(work / "smsbox-access.log"))}
# MO in UCS-2 (all Chinese text) is recoded to UTF-8 before it is put into the URL, so the
# platform gets charset=UTF-8 and UTF-8 text. No global-sender: it would overwrite the
# receiver of every incoming message.
mo-recode = true
# The platform was down or answered neither 200 nor 202: retry the MO/DLR request this many
# times, this many seconds apart (the same %I each time, so the platform can drop repeats).
http-request-retry = {http_retries}
http-queue-delay = {http_retry_delay_s}

group = sendsms-user
username = {_quote(username)}
password = {_quote(password)}
user-deny-ip = "*.*.*.*"
user-allow-ip = {_quote(allow_ip)}
default-sender = {_quote(sender)}
# A text longer than one SMS (70 UCS-2 / 160 GSM characters) is split into parts of 67/153
# characters with a concatenation UDH, which the phone joins again; up to max-messages parts
# (what does not fit is cut off, and the request still answered 202).
concatenation = true
max-messages = {max_messages}
{dlr_line}
group = sms-service
# `default` is the service for any message whose first word matches no other keyword; with
# this the only service, EVERY MO message comes here whatever it starts with (TD, 1, Chinese).
keyword = default
catch-all = true
get-url = {_quote(sms_url)}
# Kannel itself never answers the citizen: the platform replies, when it wants, via sendsms.
max-messages = 0
omit-empty = true
accept-x-kannel-headers = true
"""


def write_kannel_config(work_dir: Path | str, **options: object) -> Path:
    """Write render_kannel(work_dir=work_dir, **options) to work_dir/kannel.conf; return it."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / CONF_NAME
    path.write_text(render_kannel(work_dir=work, **options), encoding="utf-8")  # type: ignore[arg-type]
    return path
