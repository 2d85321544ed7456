"""Kannel 1.4.5 SMS gateway for the hotline: kannel.conf generation and a foreground runner."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

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


def mo_url(platform_url: str = DEFAULT_PLATFORM_URL) -> str:
    """The sms-service get-url for a platform at platform_url (scheme://host:port)."""
    return f"{platform_url.rstrip('/')}{MO_PATH}?{MO_QUERY}"


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


# --- ports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KannelPorts:
    """The TCP ports of one gateway."""

    admin: int
    sendsms: int
    box: int
    fake_smsc: int | None = None

    @classmethod
    def free(cls, host: str = "127.0.0.1", *, fake_smsc: bool = True) -> KannelPorts:
        """Distinct ports the OS reports free (bound to 0 together, then released). Others may
        run tests on this machine: there is a small race until Kannel binds them."""
        socks = []
        try:
            for _ in range(4 if fake_smsc else 3):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, 0))
            ports = [int(s.getsockname()[1]) for s in socks]
        finally:
            for s in socks:
                s.close()
        return cls(ports[0], ports[1], ports[2], ports[3] if fake_smsc else None)


def _tcp_listening(port: int) -> bool:
    """Whether some socket on this host listens on TCP `port`. Read from /proc/net/tcp*: a probe
    connect would reach bearerbox's box port as a box, a probe bind could steal the port from a
    starting box. Falls back to a connect where there is no /proc."""
    found_proc = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        found_proc = True
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 3
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                return True
    if found_proc:
        return False
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- running Kannel ---------------------------------------------------------------------------


def kannel_binary(name: str) -> str:
    """Path of bearerbox or smsbox (Debian installs them in /usr/sbin)."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"{name} not found: apt-get install kannel")


def box_command(box: str, conf: Path, *, log_level: int = LOG_INFO) -> list[str]:
    """Command line of one Kannel 1.4.5 box in the foreground.

    Options of both boxes (gwlib): -v/--verbosity (stderr level), -F/--logfile and
    -V/--fileverbosity (a log file, here set in the config instead: log-file, log-level),
    -D/--debug, -d/--daemonize, -p/--pid-file, -u/--user, -P/--parachute, -X/--panic-script;
    bearerbox also -S/--suspended, -I/--isolated. There is no -h and no config-test option.
    Without -d a box stays in the foreground, so the PID we start is the box; without -u it
    keeps the user that started it. smsbox must only start once bearerbox's box port listens
    (it panics "Couldn't connect to the bearerbox" otherwise).
    """
    return [kannel_binary(box), "-v", str(log_level), str(conf)]


@dataclass(frozen=True)
class SendsmsResult:
    """smsbox's answer to one sendsms request."""

    status: int
    body: str

    @property
    def accepted(self) -> bool:
        """202 with `0: Accepted for delivery` (sent on), or `3: Queued for later delivery` (no
        SMSC connected: bearerbox keeps it in its store and sends it when one is)."""
        return self.status in (200, 202) and self.body.split(":", 1)[0].strip() in ("0", "3")


class KannelProcess:
    """bearerbox + smsbox on one kannel.conf, in the foreground (tests, benchmarks, supervision).

    Each box is started in its own session, so stop() reaches it and anything it forked (by the
    process group of the PID we started) and nothing else. stop() and start() can be repeated:
    the gateway keeps its message store in work_dir, so messages accepted before a stop are sent
    after the next start.
    """

    def __init__(
        self,
        conf: Path | str,
        work_dir: Path | str,
        ports: KannelPorts,
        *,
        username: str,
        password: str,
        admin_password: str | None = None,
        host: str = "127.0.0.1",
        log_level: int = LOG_INFO,
    ) -> None:
        self.conf = Path(conf).resolve()
        self.work_dir = Path(work_dir).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.ports = ports
        self.username = username
        self.password = password
        self.admin_password = admin_password if admin_password is not None else password
        self.host = host
        self.log_level = log_level
        self.bearerbox: subprocess.Popen[bytes] | None = None
        self.smsbox: subprocess.Popen[bytes] | None = None

    # -- processes --

    def _spawn(self, box: str) -> subprocess.Popen[bytes]:
        # stderr: Kannel's console log (start-up errors before the log file is open, panics).
        with (self.work_dir / f"{box}.console.log").open("ab") as console:
            return subprocess.Popen(
                box_command(box, self.conf, log_level=self.log_level),
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self, timeout_s: float = 20.0) -> None:
        """Start bearerbox, then smsbox once bearerbox listens; return when both answer."""
        if self.running():
            raise RuntimeError("Kannel is already running")
        self.stop()  # reap whichever box is left over from a crash
        self.bearerbox = self.smsbox = None
        deadline = time.monotonic() + timeout_s
        try:
            self.bearerbox = self._spawn("bearerbox")
            self._wait(
                deadline,
                "bearerbox",
                lambda: self._admin_status() is not None and _tcp_listening(self.ports.box),
            )
            self.smsbox = self._spawn("smsbox")
            self._wait(
                deadline,
                "smsbox",
                lambda: self._sendsms_answers() and self.smsbox_connected(),
            )
        except BaseException:
            self.stop()
            raise

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        while True:
            for name, proc in (("bearerbox", self.bearerbox), ("smsbox", self.smsbox)):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log_tail()}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def running(self) -> bool:
        """Both boxes alive."""
        return all(p is not None and p.poll() is None for p in (self.bearerbox, self.smsbox))

    @property
    def pids(self) -> dict[str, int]:
        return {
            name: p.pid
            for name, p in (("bearerbox", self.bearerbox), ("smsbox", self.smsbox))
            if p is not None
        }

    @staticmethod
    def _stop_proc(proc: subprocess.Popen[bytes] | None, sig: int, timeout_s: float) -> None:
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        # Anything the box forked (it should not) shares its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Graceful stop: SIGTERM smsbox (it finishes its HTTP requests), then bearerbox (it
        writes its store and closes the SMSC links); SIGKILL to a box's process group if it
        does not exit within timeout_s. Safe to call when stopped."""
        self._stop_proc(self.smsbox, signal.SIGTERM, timeout_s)
        self._stop_proc(self.bearerbox, signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """Crash both boxes (SIGKILL): what a power cut does. Messages bearerbox accepted since
        its last store dump may be lost or sent twice after the next start."""
        self._stop_proc(self.smsbox, signal.SIGKILL, 5.0)
        self._stop_proc(self.bearerbox, signal.SIGKILL, 5.0)

    def restart(self, timeout_s: float = 20.0) -> None:
        self.stop()
        self.start(timeout_s)

    def __enter__(self) -> KannelProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- logs --

    def log(self, box: str = "bearerbox") -> str:
        """A box's log file (config log-file) followed by its console output."""
        parts = []
        for name in (f"{box}.log", f"{box}.console.log"):
            path = self.work_dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for box in ("bearerbox", "smsbox"):
            text = self.log(box).splitlines()[-lines:]
            out.append(f"--- {box} ({self.work_dir}) ---\n" + "\n".join(text))
        return "\n".join(out)

    # -- HTTP --

    def _get(
        self, port: int, path: str, query: dict[str, str], timeout_s: float
    ) -> tuple[int, str]:
        url = f"http://{self.host}:{port}{path}?{urllib.parse.urlencode(query)}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")
        except urllib.error.URLError as e:
            # Unwrap: callers (and tests) want ConnectionRefusedError when Kannel is down.
            if isinstance(e.reason, OSError):
                raise e.reason from None
            raise

    def _admin_status(self) -> ET.Element | None:
        try:
            status, body = self._get(
                self.ports.admin, "/status.xml", {"password": self.admin_password}, 2.0
            )
        except OSError:
            return None
        if status != 200:
            return None
        try:
            return ET.fromstring(body)
        except ET.ParseError:
            return None

    def status_xml(self) -> ET.Element:
        """bearerbox's /status.xml (gateway, sms, dlr, boxes, smscs); raises if it is down."""
        root = self._admin_status()
        if root is None:
            raise ConnectionError("bearerbox admin is not answering")
        return root

    def smsbox_connected(self) -> bool:
        root = self._admin_status()
        if root is None:
            return False
        return any(
            (box.findtext("type") or "") == "smsbox"
            and (box.findtext("status") or "").startswith("on-line")
            for box in root.iter("box")
        )

    def smsc_status(self, smsc_id: str = "fake") -> str | None:
        """The status of one SMSC link (`online 12s`, `connecting`, `re-connecting`...)."""
        root = self._admin_status()
        if root is None:
            return None
        for smsc in root.iter("smsc"):
            if smsc.findtext("id") == smsc_id:
                return smsc.findtext("status") or ""
        return None

    def wait_listening(self, port: int, timeout_s: float = 5.0) -> None:
        """Wait until something listens on `port` (bearerbox's fake SMSC port, say)."""
        deadline = time.monotonic() + timeout_s
        self._wait(deadline, f"port {port}", lambda: _tcp_listening(port))

    def smsc_online(self, smsc_id: str = "fake") -> bool:
        return (self.smsc_status(smsc_id) or "").startswith("online")

    def wait_smsc_online(self, smsc_id: str = "fake", timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.smsc_online(smsc_id):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"smsc {smsc_id} not online ({self.smsc_status(smsc_id)}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _sendsms_answers(self) -> bool:
        try:
            # No credentials: smsbox answers 403 without sending anything.
            self._get(self.ports.sendsms, "/cgi-bin/sendsms", {}, 2.0)
        except OSError:
            return False
        return True

    def sendsms(
        self,
        to: str,
        text: str,
        *,
        sender: str | None = None,
        dlr_url: str | None = None,
        dlr_mask: int | None = None,
        coding: int = 2,
        charset: str = "UTF-8",
        extra: dict[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> SendsmsResult:
        """One sendsms request, the way the platform sends: UTF-8 text as UCS-2 (coding=2).

        dlr_url with dlr_mask (default DLR_ALL when dlr_url is given) asks for delivery reports.
        Raises ConnectionRefusedError (an OSError) when smsbox is not running; HTTP errors are
        returned, not raised (smsbox answers 4xx with a reason in the body).
        """
        query = {
            "username": self.username,
            "password": self.password,
            "to": to,
            "text": text,
            "charset": charset,
            "coding": str(coding),
        }
        if sender is not None:
            query["from"] = sender
        if dlr_url is not None:
            query["dlr-url"] = dlr_url
            query["dlr-mask"] = str(DLR_ALL if dlr_mask is None else dlr_mask)
        elif dlr_mask is not None:
            query["dlr-mask"] = str(dlr_mask)
        query.update(extra or {})
        status, body = self._get(self.ports.sendsms, "/cgi-bin/sendsms", query, timeout_s)
        return SendsmsResult(status, body)

    def admin(self, command: str, **params: str) -> tuple[int, str]:
        """An admin command (`suspend`, `resume`, `stop-smsc`, `start-smsc`, `flush-dlr`...)."""
        return self._get(
            self.ports.admin,
            f"/{command}",
            {"password": self.admin_password, **params},
            5.0,
        )


def start_kannel(
    work_dir: Path | str,
    *,
    ports: KannelPorts | None = None,
    username: str = "hotline",
    password: str = "hotline-sms",
    log_level: int = LOG_INFO,
    host: str = "127.0.0.1",
    start: bool = True,
    **options: object,
) -> KannelProcess:
    """Write work_dir/kannel.conf (free ports unless given; a fake SMSC unless ports has none
    and options give smsc_group) and start the gateway (unless start=False), waiting until it
    answers.
    options are render_kannel's (sms_url, dlr_url, sender, smsc_group, max_messages, ...).
    Stop it with .stop() or use it as a context manager."""
    # Free ports can be taken by someone else before Kannel binds them: with ports of our own
    # choosing, try again on new ones.
    attempts = 1 if ports is not None or not start else 3
    for attempt in range(attempts):
        use = ports or KannelPorts.free(host)
        conf = write_kannel_config(
            work_dir,
            bearerbox_admin_port=use.admin,
            smsbox_port=use.sendsms,
            smsbox_bearer_port=use.box,
            fake_smsc_port=use.fake_smsc,
            username=username,
            password=password,
            log_level=log_level,
            interface=host,
            **options,
        )
        admin_password = options.get("admin_password")
        proc = KannelProcess(
            conf,
            work_dir,
            use,
            username=username,
            password=password,
            admin_password=admin_password if isinstance(admin_password, str) else None,
            host=host,
            log_level=log_level,
        )
        if not start:
            return proc
        try:
            proc.start()
            if use.fake_smsc is not None:
                proc.wait_listening(use.fake_smsc, timeout_s=5.0)
        except (RuntimeError, TimeoutError):
            proc.stop()
            if attempt == attempts - 1:
                raise
            continue
        return proc
    raise AssertionError("unreachable")
