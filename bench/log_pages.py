"""Benchmark the activity-log pages and the retention prune on a large log.

Builds a fresh database (SQLite in a temporary folder and/or PostgreSQL), migrates it, fills it with
--messages messages over --webhooks webhooks spread across 30 days (with their events and attempts),
then times the pages through Flask's test client and finally times prune_log(30) over ~all rows.

    python bench/log_pages.py                         # both databases, 1,000,000 messages
    python bench/log_pages.py --database sqlite --messages 100000
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/log_pages.py --database postgresql

PostgreSQL: BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/bench); the database is
created when missing and its schema `public` is DROPPED and recreated. Never point it at real data.
Redis: the Webhooks page pings REDIS_URL (default redis://127.0.0.1:6379/0); nothing is written to it.

Each page is requested --warmups times, then timed --runs times: wall-clock median and p95 (nearest rank),
the benchmark process's CPU time (which includes SQLite's work; on PostgreSQL the server backends' CPU is
added from /proc), the SQL statements with their cursor.execute time, and the time spent in each data and
rendering function of the page (wrapped in memory by this script; no app file changes).

The prune runs prune_log(30) with its clock 40 days ahead, so every Sent/Failed row is past the retention as
if it had aged (rewriting 2.2M rows with UPDATE would instead leave PostgreSQL half dead tuples). Meanwhile a
second connection UPDATEs one pending message every 50 ms; its worst latency shows how long a batch blocks
other writers (SQLite has one writer at a time).

--explain prints the plan of every SQL statement of every page (EXPLAIN QUERY PLAN on SQLite,
EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL); --profile PAGE prints a cProfile of that page's timed requests;
--max-load waits (up to 10 minutes) for a quieter machine before timing the pages.
"""

import argparse
import atexit
import cProfile
import html
import io
import json
import math
import os
import pstats
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

# Keep the app's instance folder (secret key file) out of the work tree, before the app is imported.
_INSTANCE = tempfile.mkdtemp(prefix="webhooks-bench-instance-")
atexit.register(shutil.rmtree, _INSTANCE, ignore_errors=True)
os.environ["WEBHOOKS_INSTANCE_PATH"] = _INSTANCE
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")

import psycopg  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import event as sa_event  # noqa: E402
from sqlalchemy import text  # noqa: E402

from webhooks_app import create_app  # noqa: E402
from webhooks_app.config import DEFAULT_RETRY_DELAYS, normalize_database_url  # noqa: E402
from webhooks_app.events import EVENT_TYPES  # noqa: E402
from webhooks_app.extensions import db  # noqa: E402
from webhooks_app.models import MessageStatus  # noqa: E402
from webhooks_app.services.retention import prune_log  # noqa: E402
from webhooks_app.services.users import create_user  # noqa: E402
from webhooks_app.services.webhooks import WebhookFields, create_webhook  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench password 123"
CSRF_IN_BODY = re.compile(r'"X-CSRFToken": "([^"]+)"')
LOG_POLLER = re.compile(r'id="log-poller"[^>]*?hx-get="([^"]+)"', re.S)
WEBHOOKS_POLLER = re.compile(r'id="webhooks-live"[^>]*?hx-get="([^"]+)"', re.S)
PAGE_TARGET_MS = 50.0
BATCH_TARGET_MS = 200.0
RECENT_ALL_SENT = timedelta(hours=3)  # the newest rows are all Sent, so the live poll has nothing in flight
QUEUED_WINDOW = timedelta(hours=48)  # a few stuck Queued messages, only this recent
FAILING_SHARE = 0.035  # messages whose every attempt fails (Failed, or Scheduled retry while the ladder runs)
QUEUED_SHARE = 0.003
RETRIED_SENT_SHARE = 0.02  # Sent on the second attempt
# When each attempt starts, after the message is created: the default retry ladder.
ATTEMPT_OFFSETS = [0.0]
for _delay in DEFAULT_RETRY_DELAYS:
    ATTEMPT_OFFSETS.append(ATTEMPT_OFFSETS[-1] + _delay)

EVENT_COLUMNS = ("id", "event_uuid", "event_type", "payload", "created_at")
MESSAGE_COLUMNS = ("id", "message_uuid", "webhook_id", "event_id", "event_type", "is_test", "status",
                   "attempts_made", "next_attempt_at", "claimed_until", "enqueued_at", "failure_reason",
                   "created_at", "updated_at")
ATTEMPT_COLUMNS = ("id", "message_id", "webhook_id", "number", "started_at", "duration_ms", "succeeded",
                   "status_code", "error_kind", "error_detail", "response_excerpt")
LOADED_TABLES = ("events", "messages", "attempts")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------------------------
# Synthetic log


@dataclass
class FillSummary:
    events: int = 0
    messages: int = 0
    attempts: int = 0
    by_status: dict = field(default_factory=lambda: defaultdict(int))
    seconds: float = 0.0


def generate_rows(messages: int, webhook_ids: list[int], days: int, now: datetime, summary: FillSummary,
                  events_per_chunk: int = 2500, seed: int = 20261128):
    """Yield (events, messages, attempts) row chunks, oldest first: one event fanned out to every webhook."""
    rng = random.Random(seed)
    fan_out = len(webhook_ids)
    event_count = max(1, messages // fan_out)
    start = now - timedelta(days=days) + timedelta(minutes=1)
    step = (now - timedelta(minutes=1) - start) / event_count
    event_names = [event.name for event in EVENT_TYPES]
    message_id = attempt_id = 0
    for first in range(0, event_count, events_per_chunk):
        event_rows, message_rows, attempt_rows = [], [], []
        for index in range(first, min(first + events_per_chunk, event_count)):
            event_id = index + 1
            created = start + step * index
            age = (now - created).total_seconds()
            event_type = rng.choice(event_names)
            event_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            payload = {"assetId": 100000 + index, "systemEventType": event_type.upper().replace(".", "_"),
                       "eventId": event_uuid, "eventTime": int(created.replace(tzinfo=UTC).timestamp() * 1000),
                       "userId": 1 + index % 50}
            event_rows.append((event_id, event_uuid, event_type, json.dumps(payload), created))
            for webhook_id in webhook_ids:
                message_id += 1
                draw = rng.random()
                attempts = []  # (offset seconds, succeeded)
                next_attempt_at = None
                failure_reason = None
                if age < RECENT_ALL_SENT.total_seconds():
                    status, attempts = MessageStatus.SENT, [(0.2, True)]
                elif draw < FAILING_SHARE:
                    done = [offset for offset in ATTEMPT_OFFSETS if offset + 1 < age]
                    attempts = [(offset + 0.2, False) for offset in done]
                    if len(done) == len(ATTEMPT_OFFSETS):
                        status = MessageStatus.FAILED
                        failure_reason = f"All {len(done)} attempts failed; the last one: HTTP 500."
                    else:
                        status = MessageStatus.SCHEDULED_RETRY
                        next_attempt_at = created + timedelta(seconds=ATTEMPT_OFFSETS[len(done)])
                elif draw < FAILING_SHARE + QUEUED_SHARE and age < QUEUED_WINDOW.total_seconds():
                    status, next_attempt_at = MessageStatus.QUEUED, created
                elif draw < FAILING_SHARE + QUEUED_SHARE + RETRIED_SENT_SHARE:
                    status, attempts = MessageStatus.SENT, [(0.2, False), (ATTEMPT_OFFSETS[1] + 0.2, True)]
                else:
                    status, attempts = MessageStatus.SENT, [(0.2, True)]
                updated = created
                for number, (offset, succeeded) in enumerate(attempts, start=1):
                    attempt_id += 1
                    started = created + timedelta(seconds=offset)
                    duration = rng.randint(25, 400) if succeeded else rng.choice((180, 2200, 10000))
                    updated = started + timedelta(milliseconds=duration)
                    if succeeded:
                        attempt_rows.append((attempt_id, message_id, webhook_id, number, started, duration, True,
                                             200, None, None, '{"ok":true}'))
                    else:
                        attempt_rows.append((attempt_id, message_id, webhook_id, number, started, duration, False,
                                             500, "http_status", "HTTP 500", "Internal Server Error"))
                message_rows.append((
                    message_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)), webhook_id, event_id,
                    event_type, False, status, len(attempts), next_attempt_at, None, created, failure_reason,
                    created, updated,
                ))
                summary.by_status[status] += 1
        summary.events += len(event_rows)
        summary.messages += len(message_rows)
        summary.attempts += len(attempt_rows)
        yield event_rows, message_rows, attempt_rows


def sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DateTime storage format (always with microseconds), so comparisons still work."""
    return None if value is None else value.isoformat(sep=" ", timespec="microseconds")


def _sqlite_rows(rows, columns):
    time_positions = [index for index, name in enumerate(columns) if name.endswith("_at")]
    for row in rows:
        row = list(row)
        for index in time_positions:
            row[index] = sqlite_time(row[index])
        yield row


def fill_sqlite(path: str, chunks) -> None:
    """Load with executemany in one transaction, secondary indexes dropped and rebuilt, no journal."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")  # the load only; WAL is switched back on below
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")  # 256 MiB
        connection.execute("PRAGMA temp_store=MEMORY")
        connection.execute("PRAGMA foreign_keys=OFF")
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN "
            f"({', '.join('?' * len(LOADED_TABLES))})", LOADED_TABLES).fetchall()
        connection.execute("BEGIN")
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        statements = {
            table: f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for table, columns in zip(LOADED_TABLES, (EVENT_COLUMNS, MESSAGE_COLUMNS, ATTEMPT_COLUMNS),
                                      strict=True)
        }
        for event_rows, message_rows, attempt_rows in chunks:
            connection.executemany(statements["events"], _sqlite_rows(event_rows, EVENT_COLUMNS))
            connection.executemany(statements["messages"], _sqlite_rows(message_rows, MESSAGE_COLUMNS))
            connection.executemany(statements["attempts"], _sqlite_rows(attempt_rows, ATTEMPT_COLUMNS))
        log(f"  rows inserted; rebuilding {len(indexes)} indexes")
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def fill_postgresql(url: str, chunks) -> None:
    """Load with COPY, secondary indexes dropped and rebuilt, then VACUUM ANALYZE as autovacuum would."""
    with psycopg.connect(url) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
            cursor.execute("SET maintenance_work_mem = '256MB'")
            try:
                with connection.transaction():  # a savepoint: skip the per-row FK triggers when allowed
                    cursor.execute("SET session_replication_role = replica")
            except psycopg.errors.InsufficientPrivilege:
                log("  (not superuser: foreign keys are checked row by row during the load)")
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
                (list(LOADED_TABLES),))
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            for event_rows, message_rows, attempt_rows in chunks:
                for table, columns, rows in (("events", EVENT_COLUMNS, event_rows),
                                             ("messages", MESSAGE_COLUMNS, message_rows),
                                             ("attempts", ATTEMPT_COLUMNS, attempt_rows)):
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            log(f"  rows copied; rebuilding {len(indexes)} indexes")
            for _, sql in indexes:
                cursor.execute(sql)
            for table in LOADED_TABLES:
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT coalesce(max(id), 1) FROM {table}))")
            cursor.execute("RESET session_replication_role")
        connection.commit()
    with psycopg.connect(url, autocommit=True) as connection:
        for table in LOADED_TABLES:
            connection.execute(f"VACUUM ANALYZE {table}")
        try:
            connection.execute("CHECKPOINT")
        except psycopg.Error:
            pass


# ---------------------------------------------------------------------------------------------------------------
# Databases


def prepare_postgresql(url: str) -> None:
    """Create the database when missing, then drop and recreate its schema public."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    dbname = params.get("dbname", "postgres")
    try:
        psycopg.connect(url).close()
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            raise
        with psycopg.connect(psycopg.conninfo.make_conninfo(url, dbname="postgres"), autocommit=True) as admin:
            log(f"creating database {dbname}")
            admin.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")


@dataclass
class Statement:
    sql: str
    parameters: object
    seconds: float


class SqlRecorder:
    """Collects every statement the engine runs while recording, with its duration."""

    def __init__(self, engine):
        self.statements: list[Statement] | None = None
        self.keep_parameters = False
        sa_event.listen(engine, "before_cursor_execute", self._before)
        sa_event.listen(engine, "after_cursor_execute", self._after)
        dialect = engine.dialect
        do_commit = dialect.do_commit

        def timed_commit(dbapi_connection):  # the DBAPI COMMIT itself (SQLite: WAL write and checkpoints)
            started = time.perf_counter()
            try:
                do_commit(dbapi_connection)
            finally:
                if self.statements is not None:
                    self.statements.append(Statement("COMMIT", None, time.perf_counter() - started))

        dialect.do_commit = timed_commit

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        elapsed = time.perf_counter() - conn.info["bench_started"].pop()
        if self.statements is not None:
            self.statements.append(Statement(statement, parameters if self.keep_parameters else None, elapsed))

    def start(self) -> None:
        self.statements = []

    def stop(self) -> list[Statement]:
        statements, self.statements = self.statements or [], None
        return statements


class CallTimers:
    """Wraps the app's data and rendering functions (in memory, for this process only) to time each per request.

    The SQL recorder sees only cursor.execute; on SQLite most of a large result is read after it, in fetch,
    so these wrappers are what show where a page's time really goes.
    """

    TARGETS = (
        ("log_page", "webhooks_app.services.activity", "log_page"),
        ("status_counts", "webhooks_app.services.activity", "status_counts"),
        ("hourly_outcomes", "webhooks_app.services.activity", "hourly_outcomes"),
        ("log_changes", "webhooks_app.services.activity", "log_changes"),
        ("list_webhooks", "webhooks_app.services.webhooks", "list_webhooks"),
        ("list_webhooks", "webhooks_app.activity.routes", "list_webhooks"),
        ("get_webhook", "webhooks_app.activity.routes", "get_webhook"),
        ("webhooks_fingerprint", "webhooks_app.webhooks.routes", "webhooks_fingerprint"),
        ("redis ping", "webhooks_app.webhooks.routes", "redis_is_available"),
        ("render", "webhooks_app.activity.routes", "render_page_or_fragment"),
        ("render", "webhooks_app.activity.routes", "render_template"),
        ("render", "webhooks_app.webhooks.routes", "render_page_or_fragment"),
        ("render", "webhooks_app.webhooks.routes", "render_template"),
    )

    def __init__(self):
        self.current: dict[str, float] | None = None
        self.depth = 0
        for label, module_name, attribute in self.TARGETS:
            module = sys.modules.get(module_name)
            original = getattr(module, attribute, None) if module else None
            if original is None:
                log(f"  (cannot time {module_name}.{attribute}: not found)")
                continue
            setattr(module, attribute, self._wrap(label, original))

    def _wrap(self, label: str, original):
        def timed(*args, **kwargs):
            if self.current is None or self.depth:
                return original(*args, **kwargs)
            self.depth += 1
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                self.current[label] = self.current.get(label, 0.0) + (time.perf_counter() - started) * 1000

        timed.__wrapped__ = original
        return timed

    def start(self) -> None:
        self.current = {}

    def stop(self) -> dict[str, float]:
        current, self.current = self.current or {}, None
        return current


_TIMERS: list[CallTimers] = []
REST = "rest"  # a request's time outside the timed functions: Flask, sign-in, forms, the test client


def call_timers() -> CallTimers:
    """One set of wrappers for the whole process (both databases)."""
    if not _TIMERS:
        _TIMERS.append(CallTimers())
    return _TIMERS[0]


def short_sql(sql: str, width: int = 150) -> str:
    sql = " ".join(sql.split())
    sql = re.sub(r"^SELECT (?!count|messages\.status, count)[^()]*? FROM", "SELECT … FROM", sql)
    sql = re.sub(r"IN \((?:[^()]*?, ){8,}[^()]*?\)", "IN (…)", sql)
    sql = re.sub(r"\(__\[POSTCOMPILE_\w+\]\)", "(…)", sql)
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 30 samples is the 29th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# ---------------------------------------------------------------------------------------------------------------
# Pages


@dataclass
class PageResult:
    name: str
    url: str
    median_ms: float
    p95_ms: float
    queries: int
    sql_median_ms: float
    statements: list[tuple[str, float]]  # (sql, median ms) in execution order
    target_ms: float | None
    cpu_median_ms: float = 0.0
    server_cpu_mean_ms: float | None = None  # PostgreSQL backends' CPU per request (mean; /proc ticks)
    parts: dict = field(default_factory=dict)  # function label -> median ms per request


class ServerCpu:
    """CPU time of the PostgreSQL backends serving the app, read from /proc (None when not readable)."""

    def __init__(self, app):
        self.pids: list[int] = []
        with app.app_context():
            if db.engine.dialect.name == "postgresql":
                self.pids = list(db.session.scalars(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> 0")))
            db.session.remove()
        self.tick_ms = 1000 / os.sysconf("SC_CLK_TCK")

    def ms(self) -> float | None:
        if not self.pids:
            return None
        total = 0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total * self.tick_ms


def time_page(client, recorder: SqlRecorder, timers: CallTimers, name: str, url: str, expect: int, runs: int,
              warmups: int, target_ms: float | None, profile: bool = False,
              server_cpu: ServerCpu | None = None) -> PageResult:
    for _ in range(warmups):
        response = client.get(url)
        if response.status_code != expect:
            raise SystemExit(f"{name}: GET {url} answered {response.status_code}, expected {expect}")
    totals, cpu_totals, sql_totals, per_position, counts = [], [], [], defaultdict(list), []
    parts: dict[str, list[float]] = defaultdict(list)
    texts: dict[int, str] = {}
    profiler = cProfile.Profile() if profile else None
    server_started = server_cpu.ms() if server_cpu else None
    for _ in range(runs):
        recorder.start()
        timers.start()
        if profiler:
            profiler.enable()
        cpu_started = time.process_time()
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        cpu_totals.append((time.process_time() - cpu_started) * 1000)
        if profiler:
            profiler.disable()
        statements = recorder.stop()
        timed_parts = timers.stop()
        for label, ms in timed_parts.items():
            parts[label].append(ms)
        parts[REST].append(elapsed * 1000 - sum(timed_parts.values()))
        if response.status_code != expect:
            raise SystemExit(f"{name}: GET {url} answered {response.status_code}, expected {expect}")
        totals.append(elapsed * 1000)
        sql_totals.append(sum(s.seconds for s in statements) * 1000)
        counts.append(len(statements))
        for position, statement in enumerate(statements):
            per_position[position].append(statement.seconds * 1000)
            texts.setdefault(position, statement.sql)
    server_ms = None if server_started is None else (server_cpu.ms() - server_started) / runs
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(f"\n--- cProfile of {runs} × {name} ({url}) ---\n{out.getvalue()}")
    return PageResult(
        name=name, url=url, median_ms=statistics.median(totals), p95_ms=percentile(totals, 0.95),
        queries=round(statistics.median(counts)), sql_median_ms=statistics.median(sql_totals),
        statements=[(texts[p], statistics.median(per_position[p])) for p in sorted(per_position)],
        target_ms=target_ms, cpu_median_ms=statistics.median(cpu_totals), server_cpu_mean_ms=server_ms,
        parts={label: statistics.median(values + [0.0] * (runs - len(values))) for label, values in parts.items()},
    )


def explain_page(app, client, recorder: SqlRecorder, name: str, url: str) -> None:
    """Print the plan of every statement one request of this page runs."""
    recorder.keep_parameters = True
    recorder.start()
    client.get(url)
    statements = recorder.stop()
    recorder.keep_parameters = False
    print(f"\n--- plans for {name} ({url}) ---")
    with app.app_context():
        connection = db.engine.raw_connection()
        try:
            dialect = db.engine.dialect.name
            for statement in statements:
                if not statement.sql.lstrip().upper().startswith("SELECT"):
                    continue
                print(f"\n{statement.seconds * 1000:8.2f} ms  {short_sql(statement.sql, 400)}")
                print(f"           parameters: {str(statement.parameters)[:200]}")
                cursor = connection.cursor()
                if dialect == "sqlite":
                    cursor.execute("EXPLAIN QUERY PLAN " + statement.sql, statement.parameters)
                    for row in cursor.fetchall():
                        print(f"           {row[3]}")
                else:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.parameters)
                    for (line,) in cursor.fetchall():
                        print(f"           {line}")
                cursor.close()
            connection.rollback()
        finally:
            connection.close()


def sign_in(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = CSRF_IN_BODY.search(page).group(1)
    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    if response.status_code != 302:
        raise SystemExit(f"sign-in failed: {response.status_code}")


# ---------------------------------------------------------------------------------------------------------------
# Prune


@dataclass
class PruneResult:
    seconds: float
    messages: int
    attempts: int
    events: int
    batches: int
    longest_batch_ms: float
    p95_batch_ms: float
    median_batch_ms: float
    writes: int
    write_max_ms: float
    write_p95_ms: float
    statement_ms: dict  # kind -> total ms spent in that statement over the whole prune


class ConcurrentWriter(threading.Thread):
    """Updates one (pending, never pruned) message every 50 ms on its own connection; records each latency."""

    def __init__(self, dialect: str, target: str, message_id: int):
        super().__init__(daemon=True)
        self.dialect, self.target, self.message_id = dialect, target, message_id
        self.latencies: list[float] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            if self.dialect == "sqlite":
                connection = sqlite3.connect(self.target, isolation_level=None, timeout=15)
                connection.execute("PRAGMA busy_timeout=15000")
            else:
                connection = psycopg.connect(self.target, autocommit=True)
            while not self.stopping.is_set():
                now = sqlite_time(utcnow()) if self.dialect == "sqlite" else utcnow()
                started = time.perf_counter()
                if self.dialect == "sqlite":
                    connection.execute("BEGIN IMMEDIATE")
                    connection.execute("UPDATE messages SET updated_at = ? WHERE id = ?", (now, self.message_id))
                    connection.execute("COMMIT")
                else:
                    connection.execute("UPDATE messages SET updated_at = %s WHERE id = %s", (now, self.message_id))
                self.latencies.append((time.perf_counter() - started) * 1000)
                self.stopping.wait(0.05)
            connection.close()
        except BaseException as error:  # reported by the main thread
            self.error = error


def prune_kind(sql: str) -> str:
    sql = " ".join(sql.split()).upper()
    if sql.startswith("SELECT MESSAGES.ID"):
        return "select message ids"
    if sql.startswith("DELETE FROM ATTEMPTS"):
        return "delete attempts"
    if sql.startswith("DELETE FROM MESSAGES"):
        return "delete messages"
    if sql.startswith("SELECT EVENTS.ID"):
        return "select orphaned event ids"
    if sql.startswith("DELETE FROM EVENTS"):
        return "delete events"
    if sql == "COMMIT":
        return "COMMIT"
    if sql.startswith("DELETE FROM LOGIN_ATTEMPTS"):
        return "delete login attempts (once)"
    return "other (BEGIN, …)"


def run_prune(app, recorder: SqlRecorder, dialect: str, writer_target: str, shift: timedelta) -> PruneResult:
    with app.app_context():
        pending_id = db.session.scalar(text(
            "SELECT id FROM messages WHERE status IN ('queued', 'scheduled_retry') ORDER BY id LIMIT 1"))
        db.session.remove()
    writer = ConcurrentWriter(dialect, writer_target, pending_id) if pending_id else None
    if writer:
        writer.start()
        time.sleep(0.3)
    with app.app_context():
        recorder.start()
        started = time.perf_counter()
        # A clock `shift` ahead: every Sent/Failed row is then past the retention, exactly as if it had aged.
        report = prune_log(30, now=utcnow() + shift)
        seconds = time.perf_counter() - started
        statements = recorder.stop()
        db.session.remove()
    if writer:
        writer.stopping.set()
        writer.join()
        if writer.error:
            raise writer.error
    by_kind: dict[str, float] = defaultdict(float)
    for statement in statements:
        by_kind[prune_kind(statement.sql)] += statement.seconds * 1000
    in_batches = sum(ms for kind, ms in by_kind.items() if not kind.startswith(("other", "delete login")))
    by_kind["rest of the batches (Python, SQLAlchemy)"] = sum(report.batch_seconds) * 1000 - in_batches
    batch_ms = [s * 1000 for s in report.batch_seconds] or [0.0]
    latencies = writer.latencies if writer and writer.latencies else [0.0]
    return PruneResult(
        seconds=seconds, messages=report.messages, attempts=report.attempts, events=report.events,
        batches=report.batches, longest_batch_ms=report.longest_batch_seconds * 1000,
        p95_batch_ms=percentile(batch_ms, 0.95), median_batch_ms=statistics.median(batch_ms),
        writes=len(writer.latencies) if writer else 0, write_max_ms=max(latencies),
        write_p95_ms=percentile(latencies, 0.95), statement_ms=dict(by_kind),
    )


# ---------------------------------------------------------------------------------------------------------------
# One database


@dataclass
class DatabaseResult:
    name: str
    fill: FillSummary
    pages: list[PageResult]
    prune: PruneResult | None
    sizes: dict


def database_sizes(app) -> dict:
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            path = Path(db.engine.url.database)
            size = path.stat().st_size
        else:
            size = db.session.scalar(text("SELECT pg_database_size(current_database())"))
        db.session.remove()
    return {"bytes": size}


def wait_for_quiet(limit: float, patience: float = 600.0) -> None:
    """Wait until the 1-minute load average is under `limit` (other work on a shared machine skews timings)."""
    deadline = time.monotonic() + patience
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        log(f"  load average {os.getloadavg()[0]:.1f} ≥ {limit}: waiting")
        time.sleep(15)


def bench_database(name: str, args) -> DatabaseResult:
    workdir = tempfile.mkdtemp(prefix="webhooks-bench-")
    if name == "sqlite":
        sqlite_path = str(Path(workdir) / "bench.sqlite3")
        url = f"sqlite:///{sqlite_path}"
        writer_target = sqlite_path
    else:
        raw_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG_URL)
        raw_url = raw_url.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://")
        prepare_postgresql(raw_url)
        url = normalize_database_url(raw_url)
        writer_target = raw_url
    log(f"== {name}: {url}")
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": os.environ["SECRET_KEY"],
        "REDIS_URL": args.redis_url,
    })
    with app.app_context():
        upgrade()
        webhook_ids = []
        for number in range(1, args.webhooks + 1):
            webhook, _ = create_webhook(WebhookFields(
                f"Receiver {number:02d}", f"https://hooks{number}.example.com/webhooks",
                tuple(event.name for event in EVENT_TYPES), True))
            webhook_ids.append(webhook.id)
        create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()

    fill = FillSummary()
    now = utcnow()
    chunks = generate_rows(args.messages, webhook_ids, args.days, now, fill)
    log(f"filling {args.messages:,} messages over {len(webhook_ids)} webhooks and {args.days} days")
    started = time.perf_counter()
    if name == "sqlite":
        fill_sqlite(sqlite_path, chunks)
        if args.sqlite_analyze:
            with sqlite3.connect(sqlite_path) as connection:
                connection.execute("ANALYZE")
    else:
        fill_postgresql(writer_target, chunks)
    fill.seconds = time.perf_counter() - started
    sizes = database_sizes(app)
    log(f"filled in {fill.seconds:.1f} s: {fill.events:,} events, {fill.messages:,} messages, "
        f"{fill.attempts:,} attempts ({dict(fill.by_status)}); database {sizes['bytes'] / 2**20:,.0f} MiB")

    with app.app_context():
        engine = db.engine
        recorder = SqlRecorder(engine)
    timers = call_timers()
    client = app.test_client()
    sign_in(client)
    server_cpu = ServerCpu(app) if name == "postgresql" else None

    webhook_id = webhook_ids[len(webhook_ids) // 2]
    log_url = f"/system/integrations/api/webhooks/{webhook_id}/log"
    middle_id = fill.messages // 2
    first_page = client.get(log_url).get_data(as_text=True)
    log_poll_url = html.unescape(LOG_POLLER.search(first_page).group(1))
    webhooks_page = client.get("/system/integrations/api/webhooks").get_data(as_text=True)
    webhooks_poll_url = html.unescape(WEBHOOKS_POLLER.search(webhooks_page).group(1))
    pages = [
        ("Log, first page", log_url, 200, PAGE_TARGET_MS),
        ("Log, Status = Failed", f"{log_url}?status=failed", 200, PAGE_TARGET_MS),
        ("Log, last page (Oldest)", f"{log_url}?oldest=1", 200, PAGE_TARGET_MS),
        ("Log, deep page (before=middle id)", f"{log_url}?before={middle_id}", 200, PAGE_TARGET_MS),
        ("Log, live poll (nothing new)", log_poll_url, 204, PAGE_TARGET_MS),
        ("Webhooks page", "/system/integrations/api/webhooks", 200, PAGE_TARGET_MS),
        ("Webhooks page, live poll", webhooks_poll_url, 204, PAGE_TARGET_MS),
        ("All activity, first page", "/system/integrations/api/activity", 200, None),
        ("All activity, Status = Failed", "/system/integrations/api/activity?status=failed", 200, None),
    ]
    if args.max_load:
        wait_for_quiet(args.max_load)
    load_before = os.getloadavg()[0]
    results = []
    for page_name, page_url, expect, target in pages:
        result = time_page(client, recorder, timers, page_name, page_url, expect, args.runs, args.warmups, target,
                           profile=bool(args.profile) and args.profile.lower() in page_name.lower(),
                           server_cpu=server_cpu)
        results.append(result)
        log(f"{page_name:36} median {result.median_ms:8.1f} ms  p95 {result.p95_ms:8.1f} ms  "
            f"CPU {result.cpu_median_ms:7.1f}{server_text(result)} ms  "
            f"SQL {result.sql_median_ms:7.1f} ms in {result.queries} queries  {page_url}")
        log("    " + ", ".join(f"{label} {ms:.1f}" for label, ms in result.parts.items()))
        for sql, ms in result.statements:
            if ms >= args.show_statements_ms:
                log(f"    {ms:8.2f} ms  {short_sql(sql)}")
    sizes["load"] = (load_before, os.getloadavg()[0])
    if args.explain:
        for page_name, page_url, _, _ in pages:
            explain_page(app, client, recorder, page_name, page_url)

    prune = None
    if not args.no_prune:
        log("pruning: prune_log(30) with the clock 40 days ahead, a concurrent UPDATE every 50 ms")
        prune = run_prune(app, recorder, name, writer_target, timedelta(days=40))
        log(f"pruned in {prune.seconds:.1f} s: {prune.messages:,} messages, {prune.attempts:,} attempts, "
            f"{prune.events:,} events in {prune.batches} batches; longest batch {prune.longest_batch_ms:.0f} ms, "
            f"p95 {prune.p95_batch_ms:.0f} ms; concurrent write max {prune.write_max_ms:.0f} ms")
        for kind, ms in sorted(prune.statement_ms.items(), key=lambda item: -item[1]):
            log(f"    {ms / 1000:8.1f} s  {kind}")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if args.keep:
        log(f"kept the database: {url}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return DatabaseResult(name, fill, results, prune, sizes)


# ---------------------------------------------------------------------------------------------------------------
# Report

LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def server_text(row: PageResult) -> str:
    return "" if row.server_cpu_mean_ms is None else f" + {row.server_cpu_mean_ms:.1f}"


def markdown_report(results: list[DatabaseResult], args) -> str:
    lines = []
    names = [LABELS[r.name] for r in results]
    lines.append("### Pages (ms, through the Flask test client, "
                 f"{args.runs} runs after {args.warmups} warm-ups; p95 = nearest rank)\n")
    header = "| Page |" + "".join(f" {n} median | {n} p95 | {n} CPU |" for n in names) + " Target |"
    loads = ", ".join(f"{LABELS[r.name]} {r.sizes['load'][0]:.1f} → {r.sizes['load'][1]:.1f}" for r in results)
    lines.append(f"1-minute load average before → after the page timings: {loads}\n")
    lines.append(header)
    lines.append("|---|" + "---:|---:|---:|" * len(results) + "---|")
    for index, page in enumerate(results[0].pages):
        cells = []
        missed = []
        for result in results:
            row = result.pages[index]
            cells.append(f" {row.median_ms:.1f} | {row.p95_ms:.1f} | {row.cpu_median_ms:.1f}{server_text(row)} |")
            if row.target_ms is not None and row.median_ms > row.target_ms:
                missed.append(LABELS[result.name])
        target = "—" if page.target_ms is None else f"median < {page.target_ms:.0f}"
        if missed:
            target += f" **missed on {', '.join(missed)}**"
        lines.append(f"| {page.name} |" + "".join(cells) + f" {target} |")
    lines.append("\nCPU = median CPU time of the benchmark process per request (it includes SQLite's work); on "
                 "PostgreSQL `+ N` is the server backends' mean CPU per request. With other work on the machine, "
                 "CPU is the better guide to an idle machine's wall time.")
    labels = ["log_page", "status_counts", "hourly_outcomes", "log_changes", "get_webhook", "list_webhooks",
              "webhooks_fingerprint", "redis ping", "render"]
    for result in results:
        lines.append(f"\n#### Where the time goes on {LABELS[result.name]} (medians per request, ms)\n")
        lines.append("| Page | Total | SQL execute (queries) | " + " | ".join(labels)
                     + " | Rest (Flask, sign-in, forms) |")
        lines.append("|---|" + "---:|" * (len(labels) + 3))
        for row in result.pages:
            cells = " | ".join(f"{row.parts[label]:.1f}" if label in row.parts else "" for label in labels)
            lines.append(f"| {row.name} | {row.median_ms:.1f} | {row.sql_median_ms:.1f} ({row.queries}) | {cells} | "
                         f"{row.parts.get(REST, 0.0):.1f} |")
    lines.append("\n### Fill\n")
    lines.append("| Database | Messages | Events | Attempts | Sent / Failed / Scheduled retry / Queued | "
                 "Fill s | Size MiB |")
    lines.append("|---|---:|---:|---:|---|---:|---:|")
    for result in results:
        fill = result.fill
        statuses = " / ".join(f"{fill.by_status.get(s, 0):,}" for s in (
            MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.SCHEDULED_RETRY, MessageStatus.QUEUED))
        lines.append(f"| {LABELS[result.name]} | {fill.messages:,} | {fill.events:,} | {fill.attempts:,} | "
                     f"{statuses} | {fill.seconds:.0f} | {result.sizes['bytes'] / 2**20:,.0f} |")
    prunes = [r for r in results if r.prune]
    if prunes:
        lines.append("\n### prune_log(30) over the expired log (batch target: < 200 ms)\n")
        lines.append("| Database | Total s | Messages | Attempts | Events | Batches | Median batch ms | "
                     "p95 batch ms | Longest batch ms | Concurrent UPDATE max ms (p95, count) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for result in prunes:
            p = result.prune
            flag = " **missed**" if p.longest_batch_ms > BATCH_TARGET_MS else ""
            lines.append(f"| {LABELS[result.name]} | {p.seconds:.1f} | {p.messages:,} | {p.attempts:,} | "
                         f"{p.events:,} | {p.batches} | {p.median_batch_ms:.0f} | {p.p95_batch_ms:.0f} | "
                         f"{p.longest_batch_ms:.0f}{flag} | {p.write_max_ms:.0f} ({p.write_p95_ms:.0f}, {p.writes}) |")
        lines.append("\nTime inside prune statements (s):\n")
        kinds = sorted({kind for r in prunes for kind in r.prune.statement_ms})
        lines.append("| Statement |" + "".join(f" {LABELS[r.name]} |" for r in prunes))
        lines.append("|---|" + "---:|" * len(prunes))
        for kind in kinds:
            lines.append(f"| {kind} |" + "".join(f" {r.prune.statement_ms.get(kind, 0) / 1000:.1f} |"
                                                  for r in prunes))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--webhooks", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="only pinged by the Webhooks page; never written")
    parser.add_argument("--no-prune", action="store_true", help="skip the prune_log(30) measurement")
    parser.add_argument("--explain", action="store_true", help="print the plan of every page's statements")
    parser.add_argument("--profile", metavar="PAGE", help="cProfile the pages whose name contains PAGE")
    parser.add_argument("--show-statements-ms", type=float, default=1.0,
                        help="list each page's statements taking at least this many ms (median)")
    parser.add_argument("--max-load", type=float, metavar="L",
                        help="before timing pages, wait up to 10 minutes for the 1-minute load average to drop below L")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file (its path is printed)")
    parser.add_argument("--sqlite-analyze", action="store_true",
                        help="run ANALYZE after the SQLite load (the app itself never does)")
    args = parser.parse_args()

    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    results = [bench_database(name, args) for name in databases]
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    print()
    print(f"## Results — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, nproc {nproc}, Python {sys.version.split()[0]}, "
          f"{args.messages:,} messages, {args.webhooks} webhooks, {args.days} days")
    print(f"\nCommand: python bench/log_pages.py {' '.join(sys.argv[1:])}".rstrip())
    print()
    print(markdown_report(results, args))


if __name__ == "__main__":
    main()
