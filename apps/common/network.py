"""The address a request came from, believing X-Forwarded-For only from our own proxies.

Behind a reverse proxy every request's REMOTE_ADDR is the proxy's, and the
client's address is in X-Forwarded-For, which anyone can also send directly.
So the header is read only when REMOTE_ADDR is one of TRUSTED_PROXIES, and
then from the right: each trusted proxy appends the address it received
from, and the first address from the right that is not a trusted proxy is
the client (anything left of it was written by the client and is ignored).
Login throttling (django-axes, ``AXES_CLIENT_IP_CALLABLE``) and the audit
trail use this one answer.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_address(request: Any) -> str:
    """The client's IP address as text ("" when the request carries none)."""
    if request is None:
        return ""
    meta = getattr(request, "META", {})
    remote = meta.get("REMOTE_ADDR", "") or ""
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))
    remote_address = _parse(remote)
    if remote_address is None or not networks or not _trusted(remote_address, networks):
        return remote
    hops = [hop for hop in (meta.get("HTTP_X_FORWARDED_FOR", "") or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            # A malformed hop: what lies left of it cannot be trusted either.
            break
        if not _trusted(address, networks):
            return str(address)
    return remote
