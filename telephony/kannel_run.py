"""Run Kannel (bearerbox + smsbox) in the foreground for tests, benchmarks and small sites."""

from __future__ import annotations

import contextlib
import os
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

from telephony.kannel import DLR_ALL, LOG_INFO, write_kannel_config

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
