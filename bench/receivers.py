"""Endpoints for the delivery benchmarks, all on 127.0.0.1: nginx, a recording Python server, a silent server.

- `NginxReceiver`: Debian's nginx with TLS (a trustme certificate for 127.0.0.1), one worker process,
  `return 204` on every path, keep-alive, no access log; it may listen on several ports so that
  webhooks can be told apart as distinct endpoints (the product caps concurrent sends per host:port).
- `RecordingReceiver`: a threading HTTPS server that answers 204 and records, per body `event.eventId`,
  when the request arrived (time.time(), the same clock the event client uses). Paths under `/hang/` read
  the request and never answer (until the receiver stops); paths under `/fail-first/` answer 500 to the
  first delivery of each body `messageId` and 204 to the later ones, recording every delivery's arrival.
- The silent endpoint is tests/servers.py's `SilentServer` (accepts TCP connections, never answers).
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme
from servers import free_port  # tests/servers.py, on sys.path via bench/delivery.py


def port_accepts(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Tls:
    """A trustme CA (its PEM at ca_path) and a server certificate for 127.0.0.1 and localhost."""

    ca_path: str
    cert_path: str
    key_path: str
    server_context: ssl.SSLContext


def make_tls(directory: str) -> Tls:
    ca = trustme.CA()
    ca_path = os.path.join(directory, "bench-ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert_path = os.path.join(directory, "server-chain.pem")
    key_path = os.path.join(directory, "server-key.pem")
    with open(cert_path, "wb") as handle:
        for pem in server.cert_chain_pems:
            handle.write(pem.bytes())
    server.private_key_pem.write_to_path(key_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(context)
    return Tls(ca_path, cert_path, key_path, context)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def ensure_nginx(log=print) -> str:
    """Debian's nginx; `apt-get install -y nginx` when missing (after `apt-get update` if that fails)."""
    found = nginx_binary()
    if found:
        return found
    log("nginx is missing: apt-get install -y nginx")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "nginx"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "env": {**os.environ,
                                                                                 "DEBIAN_FRONTEND": "noninteractive"}}
    if subprocess.run(install, check=False, timeout=600, **quiet).returncode != 0:
        log("apt-get install failed: apt-get update, then again")
        subprocess.run(["apt-get", "update"], check=False, timeout=600, **quiet)
        subprocess.run(install, check=True, timeout=600, **quiet)
    found = nginx_binary()
    if not found:
        raise RuntimeError("nginx is still missing after apt-get install -y nginx")
    return found


NGINX_CONF = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    server {{
{listens}
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 204; }}
    }}
}}
"""


def distinct_free_ports(count: int) -> list[int]:
    """`count` different free ports (the kernel may hand the same free port out twice in a row)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class NginxReceiver:
    """nginx on 127.0.0.1 with TLS, answering 204; started and stopped by the benchmark."""

    def __init__(self, tls: Tls, ports: int = 1):
        self.tls = tls
        self.ports = distinct_free_ports(ports)
        self.port = self.ports[0]
        self.directory = tempfile.mkdtemp(prefix="bench-nginx-")
        os.chmod(self.directory, 0o755)
        self.process: subprocess.Popen | None = None

    def url(self, path: str = "/", port_index: int = 0) -> str:
        return f"https://127.0.0.1:{self.ports[port_index % len(self.ports)]}{path}"

    def start(self) -> "NginxReceiver":
        binary = ensure_nginx()
        listens = "\n".join(f"        listen 127.0.0.1:{port} ssl;" for port in self.ports)
        conf = Path(self.directory, "nginx.conf")
        conf.write_text(NGINX_CONF.format(dir=self.directory, listens=listens, cert=self.tls.cert_path,
                                          key=self.tls.key_path))
        self.process = subprocess.Popen(
            [binary, "-p", self.directory, "-c", str(conf), "-e", f"{self.directory}/error.log",
             "-g", "daemon off; master_process on;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not all(port_accepts(port) for port in self.ports):
            if self.process.poll() is not None or time.monotonic() > deadline:
                errors = Path(self.directory, "error.log")
                detail = errors.read_text() if errors.exists() else ""
                self.stop()
                raise RuntimeError(f"nginx did not start: {detail[-2000:]}")
            time.sleep(0.05)
        return self

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process and self.process.poll() is None else []

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


class _TlsPerConnectionServer(ThreadingHTTPServer):
    """Do the TLS handshake in each connection's thread, so one slow client never blocks accept()."""

    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address, handler, context: ssl.SSLContext):
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        try:
            request.settimeout(30)
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


HANG_PREFIX = "/hang/"
FAIL_FIRST_PREFIX = "/fail-first/"


class RecordingReceiver:
    """An HTTPS endpoint that answers 204 and records arrival times by the body's event.eventId.

    Under /hang/ it reads each request and never answers until stop(); under /fail-first/ it answers 500 to
    the first delivery of each messageId and 204 afterwards, keeping every arrival per messageId.
    """

    def __init__(self, tls: Tls):
        self.tls = tls
        self.lock = threading.Lock()
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.duplicates = 0
        self.hung = 0  # requests held unanswered under /hang/
        self.deliveries: dict[str, list[float]] = {}  # messageId -> arrivals, under /fail-first/
        self.message_events: dict[str, str] = {}  # messageId -> eventId, under /fail-first/
        self.stopping = threading.Event()

    def start(self) -> "RecordingReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived = time.time()
                if self.path.startswith(HANG_PREFIX):
                    with receiver.lock:
                        receiver.hung += 1
                    receiver.stopping.wait()
                    self.close_connection = True
                    return
                try:
                    document = json.loads(body)
                    event_id = document["event"]["eventId"]
                    message_id = document.get("messageId")
                except (ValueError, KeyError, TypeError, AttributeError):
                    event_id = message_id = None
                status = 204
                with receiver.lock:
                    receiver.count += 1
                    if self.path.startswith(FAIL_FIRST_PREFIX):
                        seen = receiver.deliveries.setdefault(message_id, [])
                        seen.append(arrived)
                        receiver.message_events[message_id] = event_id
                        status = 500 if len(seen) == 1 else 204
                    elif event_id is not None:
                        if event_id in receiver.arrivals:
                            receiver.duplicates += 1
                        else:
                            receiver.arrivals[event_id] = arrived
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = _TlsPerConnectionServer(("127.0.0.1", 0), Handler, self.tls.server_context)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def arrival_times(self) -> dict[str, float]:
        with self.lock:
            return dict(self.arrivals)

    def deliveries_by_event(self) -> dict[str, list[float]]:
        """{eventId: arrival times of its message's deliveries} under /fail-first/ (one webhook there)."""
        with self.lock:
            return {self.message_events[message]: list(times) for message, times in self.deliveries.items()}

    def stop(self) -> None:
        self.stopping.set()  # the held /hang/ requests end now
        self.server.shutdown()
        self.server.server_close()
