"""Which country an IP address is in, from an offline database shipped in a package.

geoip2fast carries its own data file (IPv4 and IPv6 country ranges, built
from public registries): nothing is downloaded at run time. The lookup takes
microseconds; loading the file takes about 0.2 CPU-s, once per process.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass

_lock = threading.Lock()
_database: object | None = None
# geoip2fast's file with both address families.
_DATA_FILE = "geoip2fast-ipv6.dat.gz"


@dataclass(frozen=True)
class IpCountry:
    # ISO 3166-1 alpha-2 ("CN" is the mainland: Hong Kong, Macao and Taiwan have their own codes);
    # "" when the address is private, reserved or not in the database.
    country: str
    # The address is on a private, loopback or link-local network: behind our own proxy or a test host.
    private: bool


def _db() -> object:
    global _database  # noqa: PLW0603 - one database per process, loaded on first use
    if _database is None:
        with _lock:
            if _database is None:
                from geoip2fast import GeoIP2Fast

                _database = GeoIP2Fast(geoip2fast_data_file=_DATA_FILE, verbose=False)
    return _database


def ip_country(address: str) -> IpCountry:
    """The country of ``address``; raises ValueError for something that is not an IP address."""
    parsed = ipaddress.ip_address(address)
    if parsed.is_private or parsed.is_loopback or parsed.is_link_local or parsed.is_reserved:
        return IpCountry(country="", private=True)
    result = _db().lookup(str(parsed))  # type: ignore[attr-defined]
    code = str(getattr(result, "country_code", "") or "")
    return IpCountry(country=code if len(code) == 2 and code.isalpha() else "", private=False)
