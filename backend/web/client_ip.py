"""The client's address: the socket peer, or the right-most untrusted X-Forwarded-For hop."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = value.strip().strip('"')
    if text.startswith("[") and "]" in text:  # "[v6]:port"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "v4:port"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def resolve_client_ip(peer: str | None, forwarded_for: Iterable[str], trusted: list[str]) -> str:
    """Trust X-Forwarded-For only as far as a chain of proxies named in TRUSTED_PROXIES."""
    peer_ip = _parse(peer or "")
    if peer_ip is None:
        return peer or "unknown"
    networks = _networks(tuple(trusted))

    def is_trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip in net for net in networks if net.version == ip.version)

    if not networks or not is_trusted(peer_ip):
        # No trusted proxy in front: any X-Forwarded-For is the client's own (forgeable) text.
        return str(peer_ip)
    hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
    client = peer_ip
    for hop in reversed(hops):
        ip = _parse(hop)
        if ip is None:
            break  # garbage from beyond the trusted chain: stop at the last good hop
        client = ip
        if not is_trusted(ip):
            break
    return str(client)


def client_ip(request: Request, trusted: list[str]) -> str:
    cached = getattr(request.state, "client_ip", None)
    if isinstance(cached, str):
        return cached
    peer = request.client.host if request.client else None
    value = resolve_client_ip(peer, request.headers.getlist("x-forwarded-for"), trusted)
    request.state.client_ip = value
    return value
