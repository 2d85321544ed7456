"""Voicemail → work order: from the spool (a JSON note and a WAV per message) to a phone order
with the recording attached; idempotent, so a crash at any step is finished by a retry."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from telephony import store
from tickets.access import normalize_phone
from tickets.db import Database
from tickets.errors import InvalidInput
from tickets.model import Caller, Channel, Kind, NewTicket, Ticket
from tickets.service import TicketService

log = logging.getLogger(__name__)

LANGUAGES = {"cmn": "zh-Hans", "mn": "mn-Mong"}


def repair_wav(path: Path) -> float:
    """Fix the RIFF and data sizes of a WAV whose writer died before closing it; returns its
    length in seconds (PCM 16-bit as pjmedia writes it)."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        head = f.read(min(size, 4096))
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path.name} 不是 WAV 文件")
        pos = 12
        rate, block = 8000, 2
        while pos + 8 <= len(head):
            cid, clen = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
            if cid == b"fmt ":
                _, _channels, rate, _, block = struct.unpack("<HHIIH", head[pos + 8 : pos + 22])
            if cid == b"data":
                data_len = size - (pos + 8)
                data_len -= data_len % max(block, 1)
                f.seek(4)
                f.write(struct.pack("<I", pos + data_len))
                f.seek(pos + 4)
                f.write(struct.pack("<I", data_len))
                f.truncate(pos + 8 + data_len)
                return data_len / float(rate * max(block, 1))
            pos += 8 + clen
    raise ValueError(f"{path.name} 没有 data 段")


def keep_recording(wav: Path, kept: Path) -> float:
    """Copy the spooled WAV (repaired) to the recordings, synced; its length in seconds."""
    if wav.exists():
        seconds = repair_wav(wav)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wav, kept)
        with open(kept, "rb") as f:
            os.fsync(f.fileno())
        return seconds
    if kept.exists():  # copied before a crash, the spool copy already gone
        return repair_wav(kept)
    return 0.0


def _clear(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


class VoicemailFiler:
    def __init__(
        self,
        tickets: TicketService,
        db: Database,
        spool: Path,
        recordings: Path,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tickets = tickets
        self.db = db
        self.spool = spool
        self.recordings = recordings
        self.now = now

    async def file(self, call: str) -> Ticket:
        """Steps: keep the recording, create the order (keyed by the call), link the call
        record, then clear the spool; each step can run again safely."""
        note = self.spool / f"{call}.json"
        if not note.exists():  # asked again after it was filed (a lost reply, a retry)
            known = await self.tickets.find_by_intake_key(f"call:{call}")
            if known is None:
                raise FileNotFoundError(f"voicemail {call} is not in the spool")
            return known
        meta = json.loads(note.read_text(encoding="utf-8"))
        wav = self.spool / str(meta.get("wav", f"{call}.wav"))
        started = datetime.fromtimestamp(float(meta.get("started", 0)), UTC)
        kept = self.recordings / started.strftime("%Y/%m/%d") / f"{call}.wav"
        seconds = await asyncio.to_thread(keep_recording, wav, kept)
        caller = str(meta.get("caller", ""))
        try:
            phone: str | None = normalize_phone(caller)
        except InvalidInput:
            phone = None
        try:
            kind = Kind(str(meta.get("kind", "other")))
        except ValueError:
            kind = Kind.OTHER
        shown = phone or caller or "未知号码"
        ticket = await self.tickets.submit(
            NewTicket(
                channel=Channel.PHONE,
                content=(
                    f"电话留言（{seconds:.0f} 秒），来电号码 {shown}。"
                    "请收听录音并回拨市民，补充诉求内容。"
                ),
                caller=Caller(phone=phone),
                kind=kind,
                title="电话留言待回拨",
                language=LANGUAGES.get(str(meta.get("language")), "zh-Hans"),
                attachments=(
                    {
                        "type": "recording",
                        "name": "留言录音.wav",
                        "path": str(kept),
                        "seconds": round(seconds, 1),
                        "caller": caller,
                    },
                ),
                intake_key=f"call:{call}",
            )
        )
        await self.db.write(
            lambda c: store.update_call(
                c, call, {"ticket_id": ticket.id, "recording": str(kept), "outcome": "voicemail"}
            )
        )
        await asyncio.to_thread(_clear, wav, note)
        log.info("voicemail %s → order %s (%.0f s)", call, ticket.number, seconds)
        return ticket

    async def recover(self, live: set[str]) -> list[tuple[str, Ticket]]:
        """Orders for voicemails left by calls no worker owns any more (a crash, a restart)."""
        folder = self.spool
        if not folder.exists():
            return []
        done = []
        for note in sorted(folder.glob("*.json")):
            call = note.stem
            if call in live:
                continue
            try:
                done.append((call, await self.file(call)))
                log.warning("recovered voicemail %s of an interrupted call", call)
            except Exception:  # one damaged note must not hold up the others
                log.exception("voicemail %s could not be filed; left in the spool", call)
        return done
