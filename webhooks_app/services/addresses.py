"""The SSRF guard: which IP addresses a delivery may connect to, and the checked addresses of a host."""

import ipaddress
import socket
import threading
import time

# Every network a delivery may never reach, with why: the IANA special-purpose registries (IPv4 and IPv6)
# and the deprecated ranges the ipaddress module still calls global. One row, one test; a narrower row
# comes before a wider one so that its reason is the one given.
FORBIDDEN_NETWORKS = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("0.0.0.0/8", "“this network”"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b::/96", "NAT64"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignment (Teredo, benchmarking, ORCHID)"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment-routing (SRv6)"),
        ("fc00::/7", "unique-local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)


def forbidden_reason(address: str) -> str | None:
    """Why a delivery must not connect to this IP address, or None when it is globally routable."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network, kind in FORBIDDEN_NETWORKS:
        if ip.version == network.version and ip in network:
            return f"{ip} is in {network} ({kind})"
    if not ip.is_global:
        return f"{ip} is not a globally routable address"
    return None


class ForbiddenAddress(Exception):
    """The endpoint resolves to an address deliveries may not reach."""


class InvalidHostName(Exception):
    """The endpoint's host name cannot be looked up at all (IDNA refuses it: a label too long, say)."""


class HostNotFound(Exception):
    """The endpoint's host name does not resolve."""


# A thread's answers are kept this long, so kept-alive connections are reused instead of looking the name
# up for every send; a changed DNS answer is followed within it.
RESOLVED_SECONDS = 30.0
_resolved = threading.local()


def checked_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """The host's addresses, resolved once and all checked: ForbiddenAddress if any may not be reached."""
    key = (host, port, allow_private)
    cache = getattr(_resolved, "answers", None)
    if cache is None:
        cache = _resolved.answers = {}
    known = cache.get(key)
    if known is not None and known[1] > time.monotonic():
        return known[0]
    try:
        candidates = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise HostNotFound(f"DNS lookup of {host} failed ({error.strerror})") from error
    except UnicodeError as error:
        raise InvalidHostName(f"{host} is not a valid DNS name ({error})") from error
    addresses = list(dict.fromkeys(sockaddr[0] for *_, sockaddr in candidates))
    if not allow_private:
        for address in addresses:
            reason = forbidden_reason(address)
            if reason:
                raise ForbiddenAddress(
                    f"{host} resolves to {address}: {reason}; deliveries only go to public addresses")
    cache[key] = (addresses, time.monotonic() + RESOLVED_SECONDS)
    return addresses
