"""One HTTPS POST to an endpoint under a hard total deadline, through the SSRF guard."""

import base64
import functools
import heapq
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util.ssl_ import create_urllib3_context

from .addresses import forbidden_reason

MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_BYTES = 1024
REDACTED = b"[secret removed]"


class ForbiddenAddress(Exception):
    """The endpoint resolves to an address deliveries may not reach."""


class InvalidHostName(Exception):
    """The endpoint's host name cannot be looked up at all (IDNA refuses it: a label too long, say)."""


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


class Watchdog:
    """One thread per process that fires deadlines in time order (cheaper than a timer thread per send)."""

    def __init__(self):
        self._condition = threading.Condition()
        self._pending: list[tuple[float, int, Deadline]] = []
        self._counter = 0
        self._thread: threading.Thread | None = None

    def schedule(self, deadline: "Deadline") -> None:
        with self._condition:
            self._counter += 1
            heapq.heappush(self._pending, (deadline.expires_at, self._counter, deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="delivery-watchdog", daemon=True)
                self._thread.start()
            if self._pending[0][2] is deadline:
                # Only a new earliest deadline changes how long the watchdog sleeps; sends share one
                # timeout, so this is rare, and the watchdog thread is not woken on every send.
                self._condition.notify()

    def _run(self) -> None:
        with self._condition:
            while True:
                while self._pending and self._pending[0][2].finished:
                    heapq.heappop(self._pending)
                if not self._pending:
                    self._condition.wait(timeout=60)
                    continue
                wait = self._pending[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(timeout=wait)
                    continue
                _, _, deadline = heapq.heappop(self._pending)
                deadline.fire()


_watchdog = Watchdog()


class Deadline:
    """Shuts every socket of one send down when its time is up, whatever the socket is blocked in."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self.expired = False
        self.finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.001, self.expires_at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor survives the TLS wrap (which detaches the original object) and
        # works for TLS sockets too (which refuse dup()); shutdown() on it cuts the one connection.
        with self._lock:
            self._sockets.append(socket.socket(fileno=os.dup(sock.fileno())))
            if self.expired:
                self._shutdown_all()

    def fire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            self._shutdown_all()

    def _shutdown_all(self) -> None:
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        _watchdog.schedule(self)
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            self.finished = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


_send_state = threading.local()


class GuardedConnectionMixin:
    """Resolve once, refuse non-public addresses, and connect to exactly the address checked."""

    def _new_conn(self) -> socket.socket:
        deadline: Deadline = _send_state.deadline
        try:
            candidates = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        except UnicodeError as error:
            raise InvalidHostName(f"{self.host} is not a valid DNS name ({error})") from error
        if not _send_state.allow_private:
            for *_, sockaddr in candidates:
                reason = forbidden_reason(sockaddr[0])
                if reason:
                    raise ForbiddenAddress(
                        f"{self.host} resolves to {sockaddr[0]}: {reason}; deliveries only go to public addresses"
                    )
        last_error: OSError | None = None
        for family, kind, proto, _, sockaddr in candidates:
            sock = socket.socket(family, kind, proto)
            deadline.watch(sock)
            sock.settimeout(deadline.remaining())
            try:
                sock.connect(sockaddr)
            except OSError as error:
                sock.close()
                last_error = error
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}") from last_error


class GuardedHTTPSConnection(GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedHTTPConnection(GuardedConnectionMixin, HTTPConnection):
    pass


class WatchedPoolMixin:
    """Put a kept-alive connection taken from the pool under the current send's deadline."""

    def _get_conn(self, timeout=None):
        connection = super()._get_conn(timeout)
        if getattr(connection, "sock", None) is not None:
            _send_state.deadline.watch(connection.sock)
        return connection


class GuardedHTTPSConnectionPool(WatchedPoolMixin, HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedHTTPConnectionPool(WatchedPoolMixin, HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


@functools.lru_cache(maxsize=8)
def verifying_context(extra_ca_path: str | None, extra_ca_mtime: float | None = None) -> ssl.SSLContext:
    """One TLS client context per extra CA file (and its modification time), shared by every new connection.

    It trusts certifi's public CAs plus the extra file, loaded straight into the context: nothing is written to
    disk. Left to requests, each new connection would build a context and parse the whole CA bundle again,
    which costs more CPU than many sends on a kept-alive connection.
    """
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
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
    """A requests adapter whose connections pass through the SSRF guard and share a cached TLS context."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if verify:
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = context_for(verify)
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert):
        super().cert_verify(conn, url, verify, cert)
        # The pool's ssl_context already trusts the CAs; a path here would be parsed per connection.
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
        if isinstance(current, (NameResolutionError, socket.gaierror)):
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


_sessions = threading.local()


def _thread_session(allow_private: bool) -> requests.Session:
    """This thread's session: its pools keep connections alive per endpoint across messages."""
    key = "private" if allow_private else "public"
    session = getattr(_sessions, key, None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # never route deliveries through proxy variables
        adapter = GuardedAdapter(max_retries=0, pool_connections=64, pool_maxsize=1)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        setattr(_sessions, key, session)
    return session


@functools.lru_cache(maxsize=1024)
def _normalized_url(url: str) -> str:
    """The URL as requests sends it (IDNA host, percent-encoding), worked out once per URL."""
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    return request.url


def _prepared_post(url: str, body: bytes, headers: dict[str, str]) -> requests.PreparedRequest:
    """A POST ready for the adapter, without Session.request's merging of settings, cookies and hooks.

    Our headers and body are built by us and the URL was validated when the webhook was saved; this
    skips work that cost about a sixth of the worker's CPU per delivery.
    """
    request = requests.PreparedRequest()
    request.method = "POST"
    request.url = _normalized_url(url)
    request.headers = requests.structures.CaseInsensitiveDict(headers)
    request.headers["Content-Length"] = str(len(body))
    request.body = body
    return request


def redacted(content: bytes, secrets: tuple[str, ...]) -> bytes:
    """The answer with every secret (and its base64, as in the whsec_ form) removed: endpoints may echo the body."""
    for secret in secrets:
        if not secret:
            continue
        encoded = base64.b64encode(secret.encode("utf-8"))
        for form in (secret.encode("utf-8"), encoded, encoded.replace(b"/", b"\\/")):
            content = content.replace(form, REDACTED)
    return content


def post_json(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool,
              verify: str | bool = True, redact: tuple[str, ...] = ()) -> SendResult:
    """POST body to url; success only for a 2xx answer received completely within `timeout` seconds.

    The stored excerpt of the answer never holds the `redact` strings (the webhook's secret).
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    if parts.scheme.lower() != "https":
        return SendResult(False, 0, error_kind="tls", error_detail="the endpoint does not use HTTPS")
    session = _thread_session(allow_private)
    with Deadline(timeout) as deadline:
        _send_state.deadline = deadline
        _send_state.allow_private = allow_private
        status_code = excerpt = None
        error: BaseException | None = None
        try:
            # Straight to the adapter: no redirects followed, and no cookie jar, so a cookie an endpoint
            # sets is never sent back with later deliveries.
            request = _prepared_post(url, body, headers)
            response = session.get_adapter(request.url).send(
                request, stream=True, timeout=(timeout, timeout), verify=verify, cert=None, proxies={},
            )
            status_code = response.status_code
            content = response.raw.read(MAX_RESPONSE_BYTES, decode_content=True) or b""
            excerpt = redacted(content, redact)[:EXCERPT_BYTES].decode("utf-8", errors="replace")
            if response.raw.read(1, decode_content=True) or deadline.expired:
                response.close()  # more than 64 KiB, or cut off: this connection cannot be reused
            else:
                response.raw.release_conn()  # read to the end: keep the connection for the next send
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ForbiddenAddress,
                InvalidHostName) as caught:
            error = caught
        finally:
            _send_state.deadline = None
        expired = deadline.expired
    duration = elapsed_ms()
    if expired:
        return SendResult(False, duration, status_code=None, error_kind="timeout",
                          error_detail=f"no complete answer within {timeout:g} s", response_excerpt=None)
    if error is not None:
        kind, detail = classify_error(error, host)
        return SendResult(False, duration, error_kind=kind, error_detail=detail)
    if 200 <= status_code < 300:
        return SendResult(True, duration, status_code=status_code, response_excerpt=excerpt)
    if 300 <= status_code < 400:
        return SendResult(False, duration, status_code=status_code, error_kind="redirect",
                          error_detail=f"HTTP {status_code}: redirects are not followed",
                          response_excerpt=excerpt)
    return SendResult(False, duration, status_code=status_code, error_kind="http_status",
                      error_detail=f"HTTP {status_code}", response_excerpt=excerpt)
