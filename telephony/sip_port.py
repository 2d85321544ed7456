"""A browser agent's audio inside a SIP worker: a pjsua2 media port on the conference bridge.

It is bridged like a call (`Leg`) but holds no SIP call, so it takes none of the 4 call slots.
pjmedia calls its two callbacks on its own clock thread, 50 times a second each: they only hand
frames to and from thread-safe callables and never raise."""

from __future__ import annotations

import ctypes
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

log = logging.getLogger(__name__)

RATE = 8000  # the bridge's clock (sip.py sets clockRate 8000: G.711 needs no resampling)
FRAME_SAMPLES = 160  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2  # 16-bit mono

Push = Callable[[bytes], None]  # call → agent: a frame the agent should hear
Pull = Callable[[], bytes | None]  # agent → call: the next frame the agent said, or None


def _vector_data(vec: Any) -> int:
    """Address of the first byte of a SWIG `ByteVector` (a std::vector<unsigned char>, whose
    first member is its begin pointer in libstdc++). SWIG's element-by-element conversion costs
    0.3–0.7 ms per frame; this costs microseconds."""
    return ctypes.c_void_p.from_address(int(vec.this)).value or 0


def _fast_buffers() -> bool:
    """Check the layout assumption once: read back a vector of known bytes through its pointer."""
    probe = bytes(range(1, 33))
    try:
        vec = pj.ByteVector(probe)
        return ctypes.string_at(_vector_data(vec), len(probe)) == probe
    except Exception:  # any surprise: use SWIG's slow but safe conversion
        return False


_FAST: bool | None = None


def fast_buffers() -> bool:
    global _FAST
    if _FAST is None:
        _FAST = _fast_buffers()
        if not _FAST:
            log.warning("pjsua2 ByteVector layout unknown: frames are copied the slow way")
    return _FAST


class _Port(pj.AudioMediaPort):
    def __init__(self, push: Push, pull: Pull, fast: bool) -> None:
        super().__init__()
        self._push = push
        self._pull = pull
        self._fast = fast
        self.errors = 0
        self.closed = False

    def onFrameReceived(self, frame: Any) -> None:
        # what the bridge mixed for this port: the agent hears it
        if self.closed:
            return
        try:
            size = int(frame.size)
            if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or size <= 0:
                return
            buf = frame.buf
            data = ctypes.string_at(_vector_data(buf), size) if self._fast else bytes(buf)
            self._push(data)
        except Exception:  # never let an exception reach pjmedia's thread
            self.errors += 1

    def onFrameRequested(self, frame: Any) -> None:
        # what the agent says, for the bridge to mix into the call
        try:
            data = None if self.closed else self._pull()
            if data is None:
                frame.type = pj.PJMEDIA_FRAME_TYPE_NONE
                frame.size = 0
                return
            if self._fast:
                buf = frame.buf
                buf.resize(len(data))
                ctypes.memmove(_vector_data(buf), data, len(data))
            else:
                frame.buf = pj.ByteVector(data)
            frame.size = len(data)
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        except Exception:
            self.errors += 1


class PortLeg:
    """An agent's audio endpoint on the bridge (bridged with `sip.connect`, like a `Leg`)."""

    def __init__(self, name: str, push: Push, pull: Pull) -> None:
        self.id = uuid.uuid4().hex
        self.state = "confirmed"
        self.media_ready = True
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, RATE, 1, 20_000, 16)
        port = _Port(push, pull, fast_buffers())
        port.createPort(name[:30], fmt)
        self._port: Any = port

    def _audio(self) -> Any | None:
        return self._port

    @property
    def errors(self) -> int:
        return int(self._port.errors) if self._port is not None else 0

    def retire(self) -> Any | None:
        """Stop the port's callbacks; returns the pjsua2 object for the stack to destroy once no
        callback can be running (destroying it inside one, on the clock thread, breaks pjmedia)."""
        self.state = "disconnected"
        self.media_ready = False
        port, self._port = self._port, None
        if port is not None:
            port.closed = True
        return port
