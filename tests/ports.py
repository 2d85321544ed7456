"""Free local ports for the servers and peers the tests start, chosen below the kernel's
ephemeral range (32768–60999 here), where no outgoing connection can take them meanwhile."""

from __future__ import annotations

import random
import socket
import time

LOW, HIGH = 10_000, 20_000
# RTP ranges of the SIP workers under test: bound only when a call starts, so they live apart
# from the ports other peers (SIPp, baresip) bind right away
RTP_LOW, RTP_HIGH = 20_000, 32_000
_rng = random.SystemRandom()  # parallel test runs must not walk the same sequence
# ports handed out lately and perhaps not bound yet (a peer started, still starting): "free
# now" says nothing about them, so they are not handed out again for a while. Three SIPp
# backends started one after the other once drew the same port (the Kamailio test's flake).
HELD_S = 120.0
_handed: dict[int, float] = {}


def port_free(port: int, *, udp: bool = True, tcp: bool = True, host: str = "127.0.0.1") -> bool:
    kinds = [k for k, on in ((socket.SOCK_DGRAM, udp), (socket.SOCK_STREAM, tcp)) if on]
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port_block(
    n: int,
    *,
    udp: bool = True,
    tcp: bool = True,
    step: int = 1,
    low: int = LOW,
    high: int = HIGH,
) -> int:
    """The first of n ports (base, base+step, …) free now for the given protocols."""
    now = time.monotonic()
    for port, at in list(_handed.items()):
        if now - at > HELD_S:
            del _handed[port]
    for _ in range(1000):
        base = _rng.randrange(low, high - n * step)
        span = range(base, base + n * step)  # the block's ports and the gaps between them
        if any(p in _handed for p in span):
            continue
        if all(port_free(p, udp=udp, tcp=tcp) for p in span[::step]):
            _handed.update(dict.fromkeys(span, now))
            return base
    raise RuntimeError(f"no block of {n} free ports in {low}–{high}")


def free_port(*, udp: bool = True, tcp: bool = True) -> int:
    """A port free for UDP and TCP (SIP listens on both with one number)."""
    return free_port_block(1, udp=udp, tcp=tcp)
