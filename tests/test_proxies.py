"""Client addresses behind reverse proxies: X-Forwarded-For is believed only from
[server] trusted_proxies, and only up to the first hop no trusted proxy added."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from agent_ui.context import SERVICES, WebSettings, client_address

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _Svc:
    def __init__(self, proxies: tuple[str, ...]) -> None:
        import ipaddress

        self.web = WebSettings(trusted_proxies=tuple(ipaddress.ip_network(p) for p in proxies))


def request(remote: str, forwarded: str | None, proxies: tuple[str, ...]) -> web.Request:
    app = web.Application()
    app[SERVICES] = _Svc(proxies)  # type: ignore[assignment]
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}

    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (remote, 40000) if name == "peername" else default

    return make_mocked_request("GET", "/", headers=headers, app=app, transport=Transport())


@pytest.mark.parametrize(
    ("remote", "forwarded", "proxies", "expected"),
    [
        # no proxy configured: the peer, whatever the header says (a forged header)
        ("203.0.113.7", "10.0.0.1", (), "203.0.113.7"),
        ("127.0.0.1", "10.9.9.9", (), "127.0.0.1"),
        # a trusted proxy on the same host: the address it saw
        ("127.0.0.1", "198.51.100.23", ("127.0.0.1/32",), "198.51.100.23"),
        # the client forged a first hop; the proxy appended the real one
        ("127.0.0.1", "127.0.0.1, 198.51.100.23", ("127.0.0.1/32",), "198.51.100.23"),
        # two trusted proxies in a row
        ("10.0.0.5", "198.51.100.23, 10.0.0.6", ("10.0.0.0/24",), "198.51.100.23"),
        # a peer that is not a trusted proxy: its header is ignored
        ("192.0.2.1", "198.51.100.23", ("127.0.0.1/32",), "192.0.2.1"),
        # garbage in the header: the proxy itself
        ("127.0.0.1", "not-an-address", ("127.0.0.1/32",), "127.0.0.1"),
        # only trusted hops: the peer
        ("127.0.0.1", "127.0.0.1", ("127.0.0.1/32",), "127.0.0.1"),
    ],
)
def test_client_address_believes_forwarding_only_from_trusted_proxies(
    remote: str, forwarded: str | None, proxies: tuple[str, ...], expected: str
) -> None:
    assert client_address(request(remote, forwarded, proxies)) == expected
