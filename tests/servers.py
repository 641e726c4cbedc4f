"""Real servers for tests: HTTPS receivers with trustme certificates, bad endpoints (Redis: bin/with_redis.py)."""

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import trustme


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout: float = 20, interval: float = 0.05, message: str = "condition"):
    """Poll `condition` until it returns something truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float
    client_port: int = 0

    def json(self):
        return json.loads(self.body)


@dataclass
class CertificateAuthority:
    ca: trustme.CA
    ca_path: str
    server_context: ssl.SSLContext


def make_certificates(tmp_dir: str) -> CertificateAuthority:
    """A trustme CA and a server certificate for 127.0.0.1, ::1 and localhost."""
    ca = trustme.CA()
    ca_path = f"{tmp_dir}/test-ca.pem"
    ca.cert_pem.write_to_path(ca_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "::1", "localhost").configure_cert(context)
    return CertificateAuthority(ca, ca_path, context)


@dataclass
class Receiver:
    """An HTTPS endpoint on 127.0.0.1 that records what it receives and answers per path."""

    server_context: ssl.SSLContext
    received: list[Received] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver.condition:
                    receiver.received.append(
                        Received(self.path, dict(self.headers), body, time.time(), self.client_address[1]))
                    receiver.condition.notify_all()
                if self.path.startswith("/slow/"):
                    # Answer late on purpose (the slowness is what is under test), or at once when the receiver stops.
                    receiver.stopping.wait(float(self.path.split("/")[2]))
                if self.path.startswith("/hang"):
                    receiver.stopping.wait()  # never answer: the sender's deadline cuts the connection
                    return
                status, answer = receiver.answer_for(self.path)
                if self.path.startswith("/echo"):
                    answer = body
                if self.path.startswith("/fail-first") and receiver.deliveries_of(json.loads(body)["messageId"]) == 1:
                    status, answer = 500, b"the first delivery of each message fails"
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"https://127.0.0.1:{receiver.port}/ok")
                if self.path.startswith("/cookie"):
                    self.send_header("Set-Cookie", "tracking=endpoint-set; Path=/")
                if self.path.startswith("/retry-after/"):
                    self.send_header("Retry-After", unquote(self.path.split("/", 3)[3]))
                if self.path.startswith("/headers"):  # many headers, a long one, and one echoing the secret
                    self.send_header("X-Echo-Token", json.loads(body).get("token", ""))
                    self.send_header("X-Long", "v" * 1000)
                    for number in range(60):
                        self.send_header(f"X-Extra-{number}", str(number))
                self.send_header("Content-Length", str(len(answer)))
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = self.server_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self, path: str = "/ok") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def deliveries_of(self, message_id: str) -> int:
        with self.condition:
            return sum(1 for r in self.received if r.body and json.loads(r.body).get("messageId") == message_id)

    @staticmethod
    def answer_for(path: str) -> tuple[int, bytes]:
        """`/ok` 204, `/status/NNN` NNN, `/big` 200 with 1 MiB, `/hostile` 500 with markup, `/slow/S` 204 after S s.

        `/retry-after/NNN/VALUE` answers NNN with `Retry-After: VALUE` (percent-decoded).
        Paths starting `/cookie` also set a cookie; `/headers` also send 62 more headers (one echoing the token);
        `/echo` answers 200 with the request's body; `/hang` never answers; `/fail-first` answers 500 to a
        message's first delivery and 204 to the next ones; `/nul` 200 with a NUL and a lone surrogate's bytes.
        """
        if path.startswith(("/status/", "/retry-after/")):
            return int(path.split("/")[2]), f"answer {path}".encode()
        if path.startswith("/big"):
            return 200, b"x" * (1024 * 1024)
        if path.startswith("/echo"):
            return 200, b""
        if path.startswith("/hostile"):
            return 500, b"<script>alert('owned')</script>" + b"y" * 4000
        if path.startswith("/nul"):
            return 200, b"ok\x00ok \xed\xa0\x80"  # a NUL, and the UTF-8 bytes of a lone surrogate
        return 204, b""

    def wait_for_count(self, count: int, path_prefix: str = "", timeout: float = 30) -> list[Received]:
        with self.condition:
            matched = lambda: [r for r in self.received if r.path.startswith(path_prefix)]  # noqa: E731
            if not self.condition.wait_for(lambda: len(matched()) >= count, timeout=timeout):
                raise AssertionError(f"expected {count} deliveries to {path_prefix or '/'}, got {len(matched())}")
            return matched()

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """A TCP server that accepts connections and never answers (or trickles one byte a second)."""

    def __init__(self, server_context: ssl.SSLContext | None = None, trickle: bool = False):
        self.server_context = server_context
        self.trickle = trickle
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self.open_now = 0
        self.most_open = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def _accept(self):
        self.listener.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            with self.lock:
                self.accepted += 1
                self.open_now += 1
                self.most_open = max(self.most_open, self.open_now)
            self.connections.append(connection)
            target = self._trickle if self.trickle else self._hold
            threading.Thread(target=target, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket):
        """Read and never answer, until the client gives up and closes the connection."""
        try:
            connection.settimeout(60)
            while connection.recv(65536):
                pass
        except OSError:
            pass
        finally:
            with self.lock:
                self.open_now -= 1

    def _trickle(self, connection: socket.socket):
        try:
            tls = self.server_context.wrap_socket(connection, server_side=True)
            tls.settimeout(30)
            tls.recv(65536)
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n" + b"z" * 30
            for byte in answer:
                if self.stopping.wait(1.0):
                    return
                tls.sendall(bytes([byte]))
        except OSError:
            return

    def stop(self):
        self.stopping.set()
        for connection in self.connections:
            connection.close()
        self.listener.close()
