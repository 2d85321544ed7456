"""The tests' port picker never hands out a port twice while its first taker may still be
starting (a port is "free now" until the peer binds it)."""

from __future__ import annotations

from tests import ports


def test_ports_handed_out_are_not_handed_out_again_before_they_are_bound() -> None:
    # a small range: without the memory of what was handed out, 20 draws from 50 ports repeat
    # one ~98 % of the time
    singles = [ports.free_port_block(1, low=30_000, high=30_050) for _ in range(20)]
    blocks = [ports.free_port_block(3, step=2, low=30_100, high=30_200) for _ in range(8)]
    assert len(set(singles)) == len(singles)
    taken = [p for b in blocks for p in range(b, b + 6)]
    assert len(set(taken)) == len(taken)  # no block overlaps another (or its gaps)
