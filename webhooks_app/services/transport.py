"""One HTTPS POST to an endpoint under a hard total deadline, through the SSRF guard (requests, public APIs only).

The host is resolved and checked once (addresses.checked_addresses); the request goes to exactly the checked
address, with the host name as TLS server name (SNI and certificate check) and as the Host header. Every socket
of the send is put under its Deadline: new ones as the TLS context wraps them, kept-alive ones as a request
starts on them.
"""

import base64
import email.utils
import functools
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import certifi
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError

from .addresses import ForbiddenAddress, HostNotFound, InvalidHostName, checked_addresses
from .deadline import Deadline, watch_current

MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_BYTES = 1024
MAX_HEADERS = 40
MAX_HEADER_VALUE = 300
REDACTED = b"[secret removed]"
RETRY_AFTER_STATUSES = (429, 503)
MAX_RETRY_AFTER_CHARACTERS = 64
SEND_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ForbiddenAddress, InvalidHostName,
               HostNotFound)


@dataclass(frozen=True)
class SendResult:
    succeeded: bool
    duration_ms: int
    status_code: int | None = None
    # timeout, refused, dns, tls, redirect, http_status, forbidden_address, connection; `unexpected` (set by the
    # caller) for an error of this service's own while sending.
    error_kind: str | None = None
    error_detail: str | None = None
    response_excerpt: str | None = None
    # The answer's headers as (name, value) pairs: at most MAX_HEADERS, each value cut, secrets removed.
    response_headers: tuple[tuple[str, str], ...] | None = None
    # A 429 or 503 answer's valid Retry-After, in seconds from now (never negative); None when absent or invalid.
    retry_after_seconds: float | None = None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Read an endpoint's Retry-After (untrusted): delta seconds or an HTTP date; None for anything else."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_RETRY_AFTER_CHARACTERS:
        return None
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # every HTTP date format is in GMT (asctime's names no zone)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


class WatchedSSLContext(ssl.SSLContext):
    """A client TLS context that puts each new connection's socket under the send's deadline before the handshake."""

    def wrap_socket(self, sock, *args, **kwargs):
        watch_current(sock)
        return super().wrap_socket(sock, *args, **kwargs)


class WatchedHTTPSConnection(HTTPSConnection):
    """An HTTPS connection whose socket, kept alive from an earlier send, is put under this send's deadline."""

    def request(self, *args, **kwargs):
        if self.sock is not None:
            watch_current(self.sock)
        return super().request(*args, **kwargs)


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


@functools.lru_cache(maxsize=8)
def verifying_context(extra_ca_path: str | None, extra_ca_mtime: float | None = None) -> ssl.SSLContext:
    """One TLS client context per extra CA file (and its modification time), shared by every new connection.

    It trusts certifi's public CAs plus the extra file, loaded straight into the context: nothing is written to
    disk. Left to requests, each new connection would build a context and parse the whole CA bundle again,
    which costs more CPU than many sends on a kept-alive connection.
    """
    context = WatchedSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=certifi.where())
    if extra_ca_path:
        context.load_verify_locations(cafile=extra_ca_path)
    return context


def context_for(verify: str | bool) -> ssl.SSLContext:
    """The shared context for a `verify` setting: True (public CAs) or the path of an extra CA file."""
    if isinstance(verify, str):
        return verifying_context(verify, os.path.getmtime(verify))
    return verifying_context(None)


class GuardedAdapter(HTTPAdapter):
    """A requests adapter for sends to a checked address: the Host header's name is the TLS server name."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"https": WatchedHTTPSConnectionPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        pool_kwargs["ssl_context"] = context_for(verify)
        pool_kwargs["server_hostname"] = urlsplit("//" + request.headers["Host"]).hostname
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert):
        # The pool's ssl_context (context_for) already trusts the CAs and verifies: requests' own version would
        # look the CA path up on disk for every send, and a path here would be parsed per connection.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = conn.ca_cert_dir = None


def _exception_chain(error: BaseException):
    seen = set()
    pending = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))


def classify_error(error: BaseException, host: str) -> tuple[str, str]:
    """Name the kind of a failed send and describe it without echoing the URL's credentials or query."""
    chain = list(_exception_chain(error))
    for current in chain:
        if isinstance(current, ForbiddenAddress):
            return "forbidden_address", str(current)
    for current in chain:
        if isinstance(current, (InvalidHostName, requests.exceptions.InvalidURL, urllib3.exceptions.LocationParseError,
                                UnicodeError)):
            return "dns", f"the endpoint URL's host {host[:100]} is not a valid DNS name"
    for current in chain:
        if isinstance(current, (HostNotFound, NameResolutionError, socket.gaierror)):
            return "dns", f"DNS lookup of {host} failed"
    for current in chain:
        if isinstance(current, ConnectionRefusedError):
            return "refused", f"{host} refused the connection"
    for current in chain:
        if isinstance(current, (ssl.SSLError, ssl.CertificateError)):
            detail = getattr(current, "verify_message", None) or getattr(current, "reason", None) or current
            return "tls", f"TLS error: {detail}"
    for current in chain:
        if isinstance(current, (TimeoutError, socket.timeout, requests.Timeout, urllib3.exceptions.TimeoutError)):
            return "timeout", "no complete answer in time"
    for current in chain:
        if isinstance(current, (ConnectionResetError, BrokenPipeError)):
            return "connection", f"{host} closed the connection"
    return "connection", f"could not deliver to {host}: {type(error).__name__}"


def secret_forms(secrets: tuple[str, ...]) -> tuple[bytes, ...]:
    """Each secret as an answer may echo it: as is, in base64 (as in the whsec_ form), and JSON-escaped."""
    forms = []
    for secret in secrets:
        if secret:
            encoded = base64.b64encode(secret.encode("utf-8"))
            forms += [secret.encode("utf-8"), encoded, encoded.replace(b"/", b"\\/")]
    return tuple(forms)


def without_forms(content: bytes, forms: tuple[bytes, ...]) -> bytes:
    """The answer with each of the secret's `forms` (secret_forms) replaced by a marker: endpoints may echo the body."""
    for form in forms:
        content = content.replace(form, REDACTED)
    return content


def kept_headers(headers, forms: tuple[bytes, ...]) -> tuple[tuple[str, str], ...]:
    """An answer's headers as stored: the first MAX_HEADERS, values cut to MAX_HEADER_VALUE, the secret's `forms`
    removed."""
    kept = []
    for name, value in list(headers.items())[:MAX_HEADERS]:
        clean = without_forms(str(value).encode("utf-8", "replace"), forms).decode("utf-8", "replace")
        kept.append((str(name)[:100], clean[:MAX_HEADER_VALUE]))
    return tuple(kept)


_sessions = threading.local()


def _thread_session() -> requests.Session:
    """This thread's session: its pools keep connections alive per address across messages."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # never route deliveries through proxy variables
        session.mount("https://", GuardedAdapter(max_retries=0, pool_connections=64, pool_maxsize=1))
        _sessions.session = session
    return session


@functools.lru_cache(maxsize=1024)
def _normalized_url(url: str) -> str:
    """The URL as requests sends it (IDNA host, percent-encoding), worked out once per URL."""
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    return request.url


def _prepared_post(url: str, address: str, body: bytes, headers: dict[str, str]) -> requests.PreparedRequest:
    """A POST to `address` for `url`'s host, ready for the adapter, without Session.request's merging of settings.

    Our headers and body are built by us and the URL was validated when the webhook was saved; this skips
    work that cost about a sixth of the worker's CPU per delivery.
    """
    parts = urlsplit(_normalized_url(url))
    port = parts.port or 443
    literal = f"[{address}]" if ":" in address else address
    request = requests.PreparedRequest()
    request.method = "POST"
    request.url = urlunsplit(("https", f"{literal}:{port}", parts.path or "/", parts.query, ""))
    request.headers = requests.structures.CaseInsensitiveDict(headers)
    request.headers["Host"] = parts.netloc
    request.headers["Content-Length"] = str(len(body))
    request.body = body
    return request


def _not_connected(error: BaseException) -> bool:
    """True when the send failed before a connection existed: nothing reached the endpoint."""
    return any(isinstance(current, NewConnectionError) for current in _exception_chain(error))


def post_json(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool,
              verify: str | bool = True, redact: tuple[str, ...] = ()) -> SendResult:
    """POST body to url; success only for a 2xx answer received completely within `timeout` seconds.

    The stored excerpt of the answer never holds the `redact` strings (the webhook's secret).
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    started = time.monotonic()
    if parts.scheme.lower() != "https":
        return SendResult(False, 0, error_kind="tls", error_detail="the endpoint does not use HTTPS")
    session = _thread_session()
    with Deadline(timeout) as deadline:
        status_code = excerpt = retry_after_header = response_headers = None
        error: BaseException | None = None
        try:
            addresses = checked_addresses(urlsplit(_normalized_url(url)).hostname, parts.port or 443, allow_private)
            for number, address in enumerate(addresses, start=1):
                try:
                    # Straight to the adapter: no redirects followed, and no cookie jar, so a cookie an
                    # endpoint sets is never sent back with later deliveries.
                    request = _prepared_post(url, address, body, headers)
                    response = session.get_adapter(request.url).send(
                        request, stream=True, timeout=(deadline.remaining(), timeout), verify=verify, cert=None,
                        proxies={},
                    )
                    break
                except requests.ConnectionError as caught:
                    # Only when nothing was sent: the next address of the host may answer.
                    if number == len(addresses) or not _not_connected(caught) or deadline.expired:
                        raise
            status_code = response.status_code
            retry_after_header = response.headers.get("Retry-After")
            forms = secret_forms(redact)  # worked out once for the headers and the body
            response_headers = kept_headers(response.headers, forms)
            content = response.raw.read(MAX_RESPONSE_BYTES, decode_content=True) or b""
            excerpt = without_forms(content, forms)[:EXCERPT_BYTES].decode("utf-8", errors="replace")
            if response.raw.read(1, decode_content=True) or deadline.expired:
                response.close()  # more than 64 KiB, or cut off: this connection cannot be reused
            else:
                response.raw.release_conn()  # read to the end: keep the connection for the next send
        except SEND_ERRORS as caught:
            error = caught
        expired = deadline.expired
    duration = int((time.monotonic() - started) * 1000)
    if expired:
        return SendResult(False, duration, status_code=None, error_kind="timeout",
                          error_detail=f"no complete answer within {timeout:g} s", response_excerpt=None)
    if error is not None:
        kind, detail = classify_error(error, host)
        return SendResult(False, duration, error_kind=kind, error_detail=detail)
    if 200 <= status_code < 300:
        return SendResult(True, duration, status_code=status_code, response_excerpt=excerpt,
                          response_headers=response_headers)
    if 300 <= status_code < 400:
        return SendResult(False, duration, status_code=status_code, error_kind="redirect",
                          error_detail=f"HTTP {status_code}: redirects are not followed",
                          response_excerpt=excerpt, response_headers=response_headers)
    retry_after = parse_retry_after(retry_after_header) if status_code in RETRY_AFTER_STATUSES else None
    return SendResult(False, duration, status_code=status_code, error_kind="http_status",
                      error_detail=f"HTTP {status_code}", response_excerpt=excerpt, response_headers=response_headers,
                      retry_after_seconds=retry_after)
