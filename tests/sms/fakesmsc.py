"""Kannel's fake SMSC client (/usr/lib/kannel/test/fakesmsc) as a subprocess: MO in, MT out.

fakesmsc connects to bearerbox's `smsc = fake` port (one client at a time) and speaks one line
per message in each direction: `sender receiver type data`.

MO (we → fakesmsc → bearerbox), written to fakesmsc's stdin in interactive mode:
  `S R text <plain text>`      coding 7-bit; the rest of the line as is
  `S R data <url-encoded>`     coding 8-bit
  `S R ucs2 <url-encoded>`     coding UCS-2: UTF-16BE bytes, URL-encoded (`+` is a space)
  `S R udh-data <udh> <data>`  UDH and 8-bit data, both URL-encoded (also `udh`)
  `S R udh-text <udh> <text>`  URL-encoded UDH, plain 7-bit text
  `S R route <smsbox-id> <text>`, `S R dlr-mask <mask> <text>`
With mo-recode, smsbox turns UCS-2 MO into UTF-8 (charset=UTF-8, coding=0 in the MO URL).

MT (bearerbox → fakesmsc), logged by fakesmsc at debug level as `Got message N: <line>`:
  `S R text <text>` (7-bit), `S R data <url-enc>` (8-bit), `S R ucs-2 <url-enc UTF-16BE>`,
  `S R udh <url-enc UDH> data <url-enc data>` (any coding: the coding is not in the line).

fakesmsc reads stdin with fgets() into a 256-byte buffer and select()s on the descriptor, so
(1) one MO line can be at most 254 bytes before its newline, (2) lines written together sit in
stdio's buffer unseen until more input comes: it runs under `stdbuf -i0` (unbuffered stdin) and
every write waits for fakesmsc's `sent message N`. Between lines it sleeps up to 1 s in select(),
reading MT meanwhile; with `-i 0` it sends each MO as soon as it reads it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
# fgets(buffer, 256, stdin): 255 bytes including the newline.
MAX_LINE = 254

_GOT = re.compile(rb"Got message \d+: <(.*)>\s*$")
_SENT = re.compile(rb"fakesmsc: sent message (\d+)")


def fakesmsc_binary() -> str:
    if Path(FAKESMSC).exists():
        return FAKESMSC
    raise RuntimeError(f"{FAKESMSC} not found: apt-get install kannel-extras")


def _escape(data: bytes) -> bytes:
    """URL-encode only what fakesmsc/Kannel cannot take literally: controls and space (the line
    ends at a newline, a NUL ends the C string), `%` and `+` (url-decoding). Other bytes, also
    0x80-0xFF, stay raw, so a UCS-2 message is about 2 bytes per character, not 6."""
    out = bytearray()
    for b in data:
        if b <= 0x20 or b in (0x25, 0x2B, 0x7F):
            out += b"%%%02X" % b
        else:
            out.append(b)
    return bytes(out)


def _unquote_plus(data: bytes) -> bytes:
    return urllib.parse.unquote_to_bytes(data.replace(b"+", b" "))


def _is_plain(text: str) -> bool:
    return all(0x20 <= ord(c) < 0x7F for c in text)


@dataclass(frozen=True)
class Concat:
    """A concatenation UDH element: part `seq` of `total` of message `ref`."""

    ref: int
    total: int
    seq: int


def parse_concat(udh: bytes) -> Concat | None:
    """The concatenation element (IEI 0x00, 8-bit ref; IEI 0x08, 16-bit ref) of a UDH (its first
    byte is the UDH length), or None."""
    if not udh:
        return None
    end = min(len(udh), 1 + udh[0])
    i = 1
    while i + 1 < end:
        iei, length = udh[i], udh[i + 1]
        value = udh[i + 2 : i + 2 + length]
        if iei == 0x00 and length == 3 and len(value) == 3:
            return Concat(value[0], value[1], value[2])
        if iei == 0x08 and length == 4 and len(value) == 4:
            return Concat(value[0] << 8 | value[1], value[2], value[3])
        i += 2 + length
    return None


@dataclass(frozen=True)
class Mt:
    """One SMS (or one part of a concatenated one) that Kannel delivered to the fake SMSC."""

    sender: str
    receiver: str
    kind: str  # "text" (7-bit), "data" (8-bit), "ucs-2", "udh" (with UDH, coding unknown)
    data: bytes  # the payload, URL-decoded
    udh: bytes = b""
    line: bytes = b""  # as fakesmsc logged it

    @property
    def concat(self) -> Concat | None:
        return parse_concat(self.udh)

    def decode(self, coding: str | None = None) -> str:
        """The payload as text. coding: "ucs-2", "text" or "data"; default from the line's type,
        and for a part with UDH (whose line does not say) UCS-2 if that decodes, else 8-bit."""
        coding = coding or self.kind
        if coding == "udh":
            coding = "ucs-2" if len(self.data) % 2 == 0 else "data"
        if coding == "ucs-2":
            return self.data.decode("utf-16-be", "replace")
        if coding == "text":
            try:
                return self.data.decode("utf-8")
            except UnicodeDecodeError:
                return self.data.decode("latin-1")
        return self.data.decode("latin-1")

    @property
    def text(self) -> str:
        return self.decode()


@dataclass(frozen=True)
class Sms:
    """A whole MT message: one Mt, or every part of a concatenated one, joined."""

    sender: str
    receiver: str
    text: str
    parts: tuple[Mt, ...]


def parse_mt(line: bytes) -> Mt | None:
    """One fakesmsc MT line (`S R type ...`, without the log prefix), or None if malformed."""
    fields = line.split(b" ", 3)
    if len(fields) < 4:
        return None
    sender, receiver, kind, rest = fields
    name = kind.decode("ascii", "replace")
    if kind == b"udh":
        udh_enc, _, data_part = rest.partition(b" ")
        marker, _, data_enc = data_part.partition(b" ")
        if marker != b"data":
            return None
        data, udh = _unquote_plus(data_enc), _unquote_plus(udh_enc)
    elif kind in (b"data", b"ucs-2"):
        data, udh = _unquote_plus(rest), b""
    elif kind == b"text":
        data, udh = rest, b""
    else:
        return None
    return Mt(sender.decode(), receiver.decode(), name, data, udh, line)


def assemble(mts: Sequence[Mt], coding: str | None = None) -> list[Sms]:
    """Join the parts of concatenated messages (same sender, receiver, ref and total; ordered by
    seq) and pass single messages through; incomplete messages are left out. In arrival order of
    each message's first part."""
    out: list[tuple[int, Sms]] = []
    open_groups: dict[tuple[str, str, int, int], tuple[int, dict[int, Mt]]] = {}
    for i, mt in enumerate(mts):
        c = mt.concat
        if c is None:
            out.append((i, Sms(mt.sender, mt.receiver, mt.decode(coding), (mt,))))
            continue
        key = (mt.sender, mt.receiver, c.ref, c.total)
        first, parts = open_groups.get(key, (i, {}))
        if c.seq in parts:  # the ref came round again: a new message
            first, parts = i, {}
        parts[c.seq] = mt
        open_groups[key] = (first, parts)
        if len(parts) == c.total and set(parts) == set(range(1, c.total + 1)):
            ordered = tuple(parts[s] for s in range(1, c.total + 1))
            data = b"".join(p.data for p in ordered)
            whole = Mt(mt.sender, mt.receiver, mt.kind, data, b"", b"")
            out.append((first, Sms(mt.sender, mt.receiver, whole.decode(coding), ordered)))
            del open_groups[key]
    return [sms for _, sms in sorted(out, key=lambda x: x[0])]


def mo_line(sender: str, receiver: str, text: str, coding: str = "auto") -> bytes:
    """The fakesmsc line for one MO message. coding "auto": `text` for printable ASCII, else
    `ucs2` (what a phone does with Chinese); "text", "ucs2" or "data" (8-bit, ISO-8859-1)."""
    for number in (sender, receiver):
        if not number or any(c.isspace() for c in number):
            raise ValueError(f"bad number {number!r}")
    if coding == "auto":
        coding = "text" if _is_plain(text) else "ucs2"
    if coding == "text":
        if not _is_plain(text):
            raise ValueError("type text carries printable ASCII only; use ucs2")
        payload = text.encode("ascii")
    elif coding == "ucs2":
        payload = _escape(text.encode("utf-16-be"))
    elif coding == "data":
        payload = _escape(text.encode("latin-1"))
    else:
        raise ValueError(f"unknown coding {coding!r}")
    line = f"{sender} {receiver} {coding} ".encode() + payload
    if len(line) > MAX_LINE:
        raise ValueError(
            f"MO line of {len(line)} bytes: fakesmsc reads at most {MAX_LINE} (send a shorter text)"
        )
    return line


class FakeSmsc:
    """fakesmsc connected to bearerbox's fake SMSC port: send MO, collect MT.

    start() connects (pass `ready`, e.g. `lambda: kannel.smsc_online()`, to wait until bearerbox
    has taken the connection: it serves one client at a time and nothing in fakesmsc's output
    says when it is served). When bearerbox stops, fakesmsc exits; start() again after the
    gateway is back. MT collected so far are kept across connections. stop() ends the process by
    its PID (and process group).
    """

    def __init__(self, port: int, workdir: Path | str, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "fakesmsc.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._mts: list[Mt] = []
        self._written = 0  # MO lines written to the current process
        self._acked = 0  # MO lines the current process reports as sent
        self._stdbuf = shutil.which("stdbuf")

    # -- process --

    def command(self) -> list[str]:
        # No messages on the command line: interactive mode, one MO per stdin line. -i 0: no
        # pause between them. -v 0: debug logging, which is where `Got message` (MT) goes.
        cmd = [fakesmsc_binary(), "-H", self.host, "-r", str(self.port), "-i", "0", "-v", "0"]
        return [self._stdbuf, "-i0", *cmd] if self._stdbuf else cmd

    def start(self, ready: Callable[[], bool] | None = None, timeout_s: float = 10.0) -> FakeSmsc:
        if self.running():
            raise RuntimeError("fakesmsc is already running")
        self._reap()
        with self._cond:
            self._written = self._acked = 0
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        if ready is not None:
            deadline = time.monotonic() + timeout_s
            while not ready():
                if not self.running():
                    self._join_reader()
                    raise RuntimeError(f"fakesmsc exited:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"fakesmsc not connected:\n{self.log_tail()}")
                time.sleep(0.05)
        return self

    def reconnect(self, ready: Callable[[], bool] | None = None, timeout_s: float = 10.0) -> None:
        """stop() the current fakesmsc (after a gateway restart it may not have noticed yet)
        and start() a new one."""
        self.stop()
        self.start(ready, timeout_s)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with self.log_path.open("ab") as log:
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.rstrip(b"\r\n")
                got = _GOT.search(line)
                sent = _SENT.search(line) if got is None else None
                with self._cond:
                    if got is not None:
                        mt = parse_mt(got.group(1))
                        if mt is not None:
                            self._mts.append(mt)
                    elif sent is not None:
                        self._acked = max(self._acked, int(sent.group(1)))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    def _reap(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc.poll() is None:
            # EOF on stdin ends fakesmsc (it may then abort in its own clean-up: harmless).
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._join_reader()
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> int | None:
        """End fakesmsc (EOF on stdin, then SIGINT, then SIGKILL by process group)."""
        self._reap()
        return self.proc.returncode if self.proc is not None else None

    def __enter__(self) -> FakeSmsc:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # -- MO --

    def send_line(self, line: bytes | str, timeout_s: float = 10.0) -> None:
        """Write raw MO lines (without newlines; see the module docstring for the format) and
        wait until fakesmsc has sent them to bearerbox."""
        self.send_lines([line], timeout_s)

    def send_lines(self, lines: Sequence[bytes | str], timeout_s: float = 10.0) -> None:
        data = [x.encode() if isinstance(x, str) else x for x in lines]
        for x in data:
            if b"\n" in x or b"\r" in x or b"\0" in x or len(x) > MAX_LINE:
                raise ValueError(f"not a fakesmsc line (max {MAX_LINE} bytes): {x!r}")
            if len(x) < 2:
                raise ValueError("fakesmsc ignores lines shorter than 2 bytes")
        proc = self.proc
        if proc is None or proc.stdin is None or not self.running():
            raise RuntimeError(f"fakesmsc is not running:\n{self.log_tail()}")
        with self._write_lock:
            # With unbuffered stdin fakesmsc sees every line of one write; without stdbuf a
            # second line would wait in stdio's buffer, so go one line at a time.
            batches = [data] if self._stdbuf else [[x] for x in data]
            for batch in batches:
                with self._cond:
                    self._written += len(batch)
                    target = self._written
                try:
                    proc.stdin.write(b"".join(x + b"\n" for x in batch))
                    proc.stdin.flush()
                except BrokenPipeError:
                    raise RuntimeError(f"fakesmsc exited:\n{self.log_tail()}") from None
                deadline = time.monotonic() + timeout_s
                with self._cond:
                    while self._acked < target:
                        left = deadline - time.monotonic()
                        reader_done = self._reader is None or not self._reader.is_alive()
                        if left <= 0 or reader_done:
                            raise RuntimeError(
                                f"fakesmsc sent {self._acked} of {target} MO lines:\n"
                                f"{self.log_tail()}"
                            )
                        self._cond.wait(min(left, 0.2))

    def send_mo(
        self,
        sender: str,
        receiver: str,
        text: str,
        *,
        coding: str = "auto",
        timeout_s: float = 10.0,
    ) -> None:
        """One MO message from `sender` (the citizen) to `receiver` (the service number).
        coding: see mo_line(); Chinese goes as UCS-2, as from a phone."""
        self.send_line(mo_line(sender, receiver, text, coding), timeout_s)

    def send_many(
        self,
        messages: Sequence[tuple[str, str, str]],
        *,
        coding: str = "auto",
        timeout_s: float = 30.0,
    ) -> None:
        """Several MO messages (sender, receiver, text) in one write (benchmarks)."""
        self.send_lines([mo_line(s, r, t, coding) for s, r, t in messages], timeout_s)

    # -- MT --

    def received(self, timeout_s: float = 0.0, at_least: int = 1) -> list[Mt]:
        """Every MT part received so far; with timeout_s, first wait up to that long until there
        are at least `at_least` (no error if not)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self._mts) < at_least and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return list(self._mts)

    def messages(self, coding: str | None = None) -> list[Sms]:
        """Every complete MT message so far, concatenated parts joined (see assemble())."""
        return assemble(self.received(), coding)

    def clear(self) -> None:
        with self._cond:
            self._mts.clear()

    def wait_for(
        self, predicate: Callable[[Mt], bool], count: int = 1, timeout_s: float = 15.0
    ) -> list[Mt]:
        """Wait until at least `count` received MT parts satisfy predicate; return those."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                hits = [m for m in self._mts if predicate(m)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(hits)} of {count} MT matched; received "
                        f"{[m.line for m in self._mts]}\n{self.log_tail()}"
                    )
                self._cond.wait(min(left, 0.5))

    def wait_sms(
        self, predicate: Callable[[Sms], bool], count: int = 1, timeout_s: float = 15.0
    ) -> list[Sms]:
        """Wait until at least `count` complete MT messages (parts joined) satisfy predicate."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                hits = [s for s in assemble(self._mts) if predicate(s)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(hits)} of {count} MT messages matched; received "
                        f"{[m.line for m in self._mts]}\n{self.log_tail()}"
                    )
                self._cond.wait(min(left, 0.5))
