"""The SSRF guard: deliveries never reach loopback, private, link-local, multicast or reserved addresses."""

import pytest

from webhooks_app.services.addresses import FORBIDDEN_NETWORKS, forbidden_reason
from webhooks_app.services.transport import post_json

FORBIDDEN_ADDRESSES = [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "0.0.0.0", "224.0.0.1", "239.255.255.250", "100.64.0.1", "198.18.0.1", "240.0.0.1",
    "255.255.255.255", "fe80::1", "fc00::1", "ff02::1", "64:ff9b::a00:1", "2002:7f00:1::1", "::7f00:1", "::",
]


@pytest.mark.parametrize("address", FORBIDDEN_ADDRESSES)
def test_non_public_addresses_are_forbidden(address):
    """Every non-globally-routable address is refused, IPv4-mapped IPv6 unwrapped first."""
    assert forbidden_reason(address) is not None


@pytest.mark.parametrize(("network", "kind"), FORBIDDEN_NETWORKS, ids=[str(row[0]) for row in FORBIDDEN_NETWORKS])
def test_every_row_of_the_forbidden_table_is_refused(network, kind):
    """The first, a middle and the last address of each forbidden network are refused with that row's reason."""
    earlier = [row for row, _ in FORBIDDEN_NETWORKS[:FORBIDDEN_NETWORKS.index((network, kind))]]
    samples = {network[0], network[network.num_addresses // 2], network[-1]}
    for ip in [ip for ip in samples if not any(ip.version == e.version and ip in e for e in earlier)]:
        assert forbidden_reason(str(ip)) == f"{ip} is in {network} ({kind})"
        if ip.version == 4:
            assert forbidden_reason(f"::ffff:{ip}") == f"{ip} is in {network} ({kind})", "IPv4-mapped form"


@pytest.mark.parametrize("address", ["fec0::1", "192.88.99.1", "3fff::1", "5f00::1", "2001:4:112::1"])
def test_deprecated_and_documentation_ranges_that_ipaddress_calls_global_are_refused(address):
    """Site-local fec0::/10, the 6to4 relay 192.88.99.0/24 and documentation 3fff::/20 are not public targets."""
    assert forbidden_reason(address) is not None


def test_no_row_of_the_table_is_hidden_by_an_earlier_wider_row():
    """Narrower networks come first, so every row's reason can be given."""
    for index, (network, _) in enumerate(FORBIDDEN_NETWORKS):
        for earlier, _ in FORBIDDEN_NETWORKS[:index]:
            assert not (network.version == earlier.version and network.subnet_of(earlier)), \
                f"{network} is hidden by {earlier}"


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_are_allowed(address):
    """Globally routable addresses pass the guard."""
    assert forbidden_reason(address) is None


# Hosts that resolve (without any DNS server) to this machine: the guard must judge the resolved
# address, not the spelling of the host.
LOCAL_SPELLINGS = ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "2130706433", "0177.0.0.1", "localhost",
                   "127.1"]


@pytest.mark.parametrize("host", LOCAL_SPELLINGS)
def test_sends_to_local_addresses_are_refused_before_connecting(host, receiver):
    """A send to any spelling of this machine is refused with a clear reason, and the receiver hears nothing."""
    url = f"https://{host}:{receiver.port}/ok"
    result = post_json(url, b"{}", {"Content-Type": "application/json"}, timeout=2, allow_private=False)
    assert not result.succeeded
    assert result.error_kind == "forbidden_address"
    assert "deliveries only go to public addresses" in result.error_detail
    assert receiver.received == []


def test_allow_private_targets_lifts_the_guard(receiver, certificates):
    """WEBHOOKS_ALLOW_PRIVATE_TARGETS (development and tests only) lets 127.0.0.1 through."""
    result = post_json(receiver.url("/ok"), b"{}", {"Content-Type": "application/json"}, timeout=2,
                       allow_private=True, verify=certificates.ca_path)
    assert result.succeeded and result.status_code == 204


def test_proxy_variables_are_ignored(receiver, certificates, monkeypatch):
    """HTTPS_PROXY in the environment does not reroute deliveries."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    result = post_json(receiver.url("/ok"), b"{}", {}, timeout=2, allow_private=True, verify=certificates.ca_path)
    assert result.succeeded


def test_plain_http_is_refused_without_sending(receiver):
    """An http:// endpoint (stored before validation, say) fails as an HTTPS problem, unsent."""
    result = post_json(f"http://127.0.0.1:{receiver.port}/ok", b"{}", {}, timeout=2, allow_private=True)
    assert result.error_kind == "tls" and receiver.received == []


def test_a_send_goes_to_the_next_checked_address_when_one_refuses(receiver, certificates, monkeypatch):
    """A host with two checked addresses, the first refusing connections, is reached on the second, once."""
    from webhooks_app.services import transport

    monkeypatch.setattr(transport, "checked_addresses", lambda host, port, allow_private: ["127.0.0.2", "127.0.0.1"])
    result = post_json(receiver.url("/ok"), b"{}", {"Content-Type": "application/json"}, timeout=2,
                       allow_private=True, verify=certificates.ca_path)
    assert result.succeeded
    (delivery,) = receiver.received
    assert delivery.headers["Host"] == f"127.0.0.1:{receiver.port}"


def test_the_request_names_the_endpoints_host_while_going_to_the_checked_address(receiver, certificates):
    """The Host header and the TLS server name are the URL's host; the connection goes to the address checked."""
    result = post_json(f"https://localhost:{receiver.port}/ok", b"{}", {}, timeout=2, allow_private=True,
                       verify=certificates.ca_path)
    assert result.succeeded
    assert receiver.received[0].headers["Host"] == f"localhost:{receiver.port}"
