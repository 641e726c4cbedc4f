"""prune_log(30) over the expired log, with a concurrent writer measuring how long batches block it."""

import sqlite3
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from sqlalchemy import text

from webhooks_app.extensions import db
from webhooks_app.services.retention import prune_log

from .common import utcnow
from .fill import sqlite_time
from .measure import SqlRecorder, percentile


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

