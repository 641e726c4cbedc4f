"""Timing a page: SQL statements, the app's data and rendering functions, CPU, plans and profiles."""

import cProfile
import io
import math
import os
import pstats
import re
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import event as sa_event
from sqlalchemy import text

from webhooks_app.extensions import db

from .common import ADMIN_EMAIL, ADMIN_PASSWORD, CSRF_IN_BODY, log


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

