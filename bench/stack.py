"""The product's moving parts for the delivery benchmarks: a private Redis, a bench PostgreSQL database,
the Procfile's processes started with an environment, and a few measuring helpers (CPU, RSS, queues)."""

import atexit
import functools
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "bin"))  # bin/with_redis.py: RedisServer (a private redis-server on a free port)

from with_redis import RedisServer  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench_delivery"
BENCH_SECRET_KEY = "bench-delivery-secret-key-not-for-production"

__all__ = ["RedisServer", "BenchDatabase", "ProcfileProcess", "procfile_commands", "QueueWatch", "cpu_seconds",
           "tree_rss", "process_tree"]


# --- database ---------------------------------------------------------------------------------------------------


class BenchDatabase:
    """A PostgreSQL database of the benchmark's own: created when missing, schema `public` replaced."""

    def __init__(self, url: str):
        self.url = url
        self.libpq_url = url.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://")
        self.name = self.libpq_url.rsplit("/", 1)[1].split("?")[0]
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.name):
            raise ValueError(f"unexpected database name {self.name!r}")
        self.connection: psycopg.Connection | None = None

    def admin_url(self) -> str:
        return self.libpq_url.rsplit("/", 1)[0] + "/postgres"

    def create_if_missing(self) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=10) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.name,)).fetchone()
            if not exists:
                admin.execute(f'CREATE DATABASE "{self.name}"')

    def reset(self, environment: dict[str, str]) -> None:
        """Drop and recreate schema public, then `python -m flask --app wsgi db upgrade`."""
        self.create_if_missing()
        with psycopg.connect(self.libpq_url, autocommit=True, connect_timeout=10) as connection:
            connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
            connection.execute("CREATE SCHEMA public")
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=environment,
            capture_output=True, text=True, timeout=300, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"flask db upgrade failed:\n{result.stdout}\n{result.stderr}")

    def connect(self) -> psycopg.Connection:
        if self.connection is None or self.connection.closed:
            self.connection = psycopg.connect(self.libpq_url, autocommit=True, connect_timeout=10)
        return self.connection

    def scalar(self, sql: str, params=None):
        return self.connect().execute(sql, params).fetchone()[0]

    def execute(self, sql: str, params=None) -> None:
        self.connect().execute(sql, params)

    def truncate(self) -> None:
        """Empty every table but alembic_version, restarting ids."""
        tables = [row[0] for row in self.connect().execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )]
        if tables:
            names = ", ".join(f'"{name}"' for name in tables)
            self.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")

    def status_counts(self) -> dict[str, int]:
        return dict(self.connect().execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall())

    def sent_count(self) -> int:
        return self.scalar("SELECT count(*) FROM messages WHERE status = 'sent'")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


class SqliteBenchDatabase:
    """The product on SQLite (a file in the benchmark's temporary folder), with BenchDatabase's read helpers."""

    def __init__(self, path: str):
        self.path = path
        self.url = f"sqlite:///{path}"
        self.name = "sqlite"

    def reset(self, environment: dict[str, str]) -> None:
        """Remove the file, then `python -m flask --app wsgi db upgrade` creates and migrates it."""
        for suffix in ("", "-wal", "-shm"):
            Path(self.path + suffix).unlink(missing_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=environment,
            capture_output=True, text=True, timeout=300, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"flask db upgrade failed:\n{result.stdout}\n{result.stderr}")

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    def scalar(self, sql: str, params=None):
        connection = self.connect()
        try:
            return connection.execute(sql.replace("%s", "?"), params or ()).fetchone()[0]
        finally:
            connection.close()

    def truncate(self) -> None:
        """Empty every table but alembic_version."""
        connection = self.connect()
        try:
            connection.execute("PRAGMA foreign_keys=OFF")
            tables = [row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('alembic_version') "
                "AND name NOT LIKE 'sqlite_%'")]
            connection.execute("BEGIN IMMEDIATE")
            for name in tables:
                connection.execute(f'DELETE FROM "{name}"')
            connection.execute("COMMIT")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()

    def status_counts(self) -> dict[str, int]:
        connection = self.connect()
        try:
            return dict(connection.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall())
        finally:
            connection.close()

    def sent_count(self) -> int:
        return self.scalar("SELECT count(*) FROM messages WHERE status = 'sent'")

    def close(self) -> None:
        """Nothing stays open between calls."""


def postgres_pids(database: str) -> list[int]:
    """The PostgreSQL backends serving `database` (their title names it), and the WAL writer."""
    pids = []
    for process in psutil.process_iter(["name"]):
        try:
            if not (process.info["name"] or "").startswith("postgres"):
                continue
            title = " ".join(process.cmdline())
            if f" {database} " in title or title.endswith(": walwriter"):
                pids.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


# --- Procfile processes -----------------------------------------------------------------------------------------


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, str]:
    commands = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


@functools.cache
def instance_folder() -> str:
    """One throwaway instance folder for every process of a run (SECRET_KEY is set, so it stays empty)."""
    folder = tempfile.mkdtemp(prefix="bench-instance-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def procfile_environment(database_url: str, redis_url: str, ca_path: str, overrides: dict[str, str]) -> dict[str, str]:
    """The environment of a Procfile process: only the documented variables, WEBHOOKS_* defaults unless overridden."""
    inherited = {key: value for key, value in os.environ.items()
                 if not key.startswith("WEBHOOKS_") and key not in {"DATABASE_URL", "REDIS_URL", "PORT", "SECRET_KEY",
                                                                    "WEB_CONCURRENCY", "WORKER_PROCESSES",
                                                                    "WORKER_THREADS"}}
    return {
        **inherited,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(BIN.parent),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": BENCH_SECRET_KEY,
        "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "1",
        "WEBHOOKS_CA_BUNDLE": ca_path,
        "WEBHOOKS_INSTANCE_PATH": instance_folder(),
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


class ProcfileProcess:
    """One Procfile line run by /bin/sh in its own process group, its output in a log file."""

    def __init__(self, name: str, command: str, environment: dict[str, str], log_dir: Path, label: str = ""):
        self.name = name
        self.command = command
        self.environment = environment
        self.log_path = log_dir / f"{label or name}.log"
        self.process: subprocess.Popen | None = None
        self.log = None

    def start(self) -> "ProcfileProcess":
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {self.command}"], cwd=ROOT, env=self.environment, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30, group: bool = True) -> None:
        """SIGTERM the process group (as Heroku does) or only the main process, then SIGKILL what is left."""
        if self.process is None:
            return
        try:
            if self.process.poll() is None:
                try:
                    if group:
                        os.killpg(self.process.pid, signal.SIGTERM)
                    else:
                        self.process.send_signal(signal.SIGTERM)
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
            # Whatever is left of the group (a stuck child) dies now.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.process.poll() is None:
                self.process.wait(timeout=10)
        finally:
            if self.log:
                self.log.close()
                self.log = None


# --- measuring --------------------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pids: list[int], recursive: bool = True) -> float:
    """User + system CPU of these processes (and their children) so far."""
    total = 0.0
    for pid in pids:
        for process in process_tree(pid) if recursive else [psutil.Process(pid)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
    return total


def tree_rss(pid: int) -> dict[int, tuple[str, int]]:
    """{pid: (short description, RSS bytes)} of a process and its children."""
    result = {}
    for process in process_tree(pid):
        try:
            cmdline = " ".join(process.cmdline()[:6])
            result[process.pid] = (cmdline[:80], process.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return result


class QueueWatch:
    """Counts pushes onto the Dramatiq queues of the private Redis through keyspace notifications.

    A push onto `dramatiq:deliveries.DQ` is a delayed enqueue: in this product, a message that found its
    endpoint's concurrency cap full and stepped aside for a second ("deferred").
    """

    def __init__(self, redis_url: str, queue: str = "deliveries"):
        self.client = redis.Redis.from_url(redis_url)
        self.client.config_set("notify-keyspace-events", "Kl")
        self.keys = {f"dramatiq:{queue}": "enqueued", f"dramatiq:{queue}.DQ": "delayed"}
        self.counts = {"enqueued": 0, "delayed": 0}
        self.lock = threading.Lock()
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(*[f"__keyspace@0__:{key}" for key in self.keys])
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while not self.stopping.is_set():
            try:
                message = self.pubsub.get_message(timeout=0.2)
            except (redis.RedisError, ValueError):
                return
            if not message or message.get("data") not in (b"rpush", b"lpush"):
                continue
            key = message["channel"].decode().split(":", 1)[1]
            with self.lock:
                self.counts[self.keys[key]] += 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        try:
            self.pubsub.close()
            self.client.close()
        except redis.RedisError:
            pass
