"""Who the client is, for logs: `X-Forwarded-For` is believed only from `trusted_proxies` (SPEC §5)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str | None:
    """The client's address: the peer, or, when the peer is a trusted proxy, the nearest untrusted hop.

    `X-Forwarded-For` lists hops left to right, each proxy appending the one it
    saw; only the part written by trusted proxies can be believed, so the chain
    is walked from the right and the first address not trusted is the client.
    """
    if not trusted:
        return peer  # nothing to believe: the peer it is (no parsing on the per-request path)
    peer_address = _address(peer) if peer else None
    if peer_address is None or not trusted or not _trusted(peer_address, trusted):
        return str(peer_address) if peer_address is not None else peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage from here on was written by someone we do not trust
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)
