"""The SSRF guard: which IP addresses a delivery may connect to."""

import ipaddress

# Ranges refused even where the ipaddress module calls them global or does not flag them.
EXTRA_FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast (224.0.0.1 reports is_global)
        "240.0.0.0/4",  # reserved
        "::/96",  # IPv4-compatible IPv6 (deprecated)
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local-use NAT64
        "2002::/16",  # 6to4
        "2001::/32",  # Teredo
        "ff00::/8",  # IPv6 multicast
    )
)


def forbidden_reason(address: str) -> str | None:
    """Why a delivery must not connect to this IP address, or None when it is globally routable."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
    )
    for flagged, kind in checks:
        if flagged:
            return f"{ip} is a {kind} address"
    for network in EXTRA_FORBIDDEN_NETWORKS:
        if ip.version == network.version and ip in network:
            return f"{ip} is in the non-public range {network}"
    if not ip.is_global:
        return f"{ip} is not a globally routable address"
    return None
