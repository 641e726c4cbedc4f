"""Retention: delete activity-log rows older than WEBHOOKS_LOG_RETENTION_DAYS, in small batches, nightly.

The scheduler enqueues the prune_activity_log actor at 03:00 UTC; a Redis lock keeps two schedulers or
workers from pruning at once.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, exists, select

from ..database import dialect_name
from ..extensions import actor, db, queue_redis
from ..models import (
    Attempt,
    Event,
    LoginAttempt,
    Message,
    MessageStatus,
    OwedNotification,
    Replay,
    ReplayStatus,
    utcnow,
)
from .fan_out import awaiting_fan_out
from .secret_rotation import clear_expired_previous_secrets

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
# SQLite holds one database-wide write lock per batch and checkpoints its WAL on commit: smaller batches
# keep every wait for that lock short (bench/log_pages.py measures the longest).
SQLITE_BATCH_SIZE = 500
SQLITE_PAUSE_SECONDS = 0.02
PRUNE_LOCK_KEY = "webhooks:lock:prune-log"
PRUNE_LOCK_SECONDS = 3600
LAST_PRUNE_KEY = "webhooks:last-prune"
PRUNE_EVERY_SECONDS = 24 * 3600


@dataclass
class PruneReport:
    messages: int = 0
    attempts: int = 0
    events: int = 0
    batches: int = 0
    longest_batch_seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list)


def prune_log(retention_days: int, now: datetime | None = None, batch_size: int | None = None) -> PruneReport:
    """Delete finished messages (and their attempts), orphaned events and finished replays older than the retention
    period, and reset secrets whose overlap is over.

    Commits after every batch so deliveries and pages keep working while it runs; never deletes a
    message that is still Queued or Scheduled retry; safe to run again or concurrently.
    """
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    if batch_size is None:
        batch_size = SQLITE_BATCH_SIZE if dialect_name() == "sqlite" else BATCH_SIZE
    report = PruneReport()
    # The batch is chosen inside each DELETE, so no ids travel to Python and back. Sent and Failed are
    # final states, so both statements of a batch pick the same messages.
    finished_messages = (
        select(Message.id)
        .where(Message.created_at < cutoff, Message.status.notin_(MessageStatus.PENDING))
        .order_by(Message.created_at)
        .limit(batch_size)
    )
    # A running replay has yet to look at the events after its cursor: they stay until it has, even once they
    # are past the retention period (the replay was asked for while they were inside it).
    awaited_by_replay = exists().where(Replay.status == ReplayStatus.RUNNING, Event.id > Replay.cursor_event_id,
                                       Event.id <= Replay.last_event_id)
    orphaned_events = (
        select(Event.id)
        .where(Event.created_at < cutoff, ~exists().where(Message.event_id == Event.id), ~awaited_by_replay,
               ~awaiting_fan_out())
        .limit(batch_size)
    )

    def delete_messages() -> int:
        report.attempts += _delete(delete(Attempt).where(Attempt.message_id.in_(finished_messages)))
        deleted = _delete(delete(Message).where(Message.id.in_(finished_messages)))
        report.messages += deleted
        return deleted

    def delete_events() -> int:
        deleted = _delete(delete(Event).where(Event.id.in_(orphaned_events)))
        report.events += deleted
        return deleted

    _in_batches(report, delete_messages)
    _in_batches(report, delete_events)
    # Sign-in attempts only matter for the lockout window; keep a day of them for investigations.
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at < (now or utcnow()) - timedelta(days=1)))
    # Finished replays are kept as long as the messages they made (their rows name them).
    db.session.execute(delete(Replay).where(Replay.status != ReplayStatus.RUNNING, Replay.finished_at < cutoff))
    db.session.execute(delete(OwedNotification).where(OwedNotification.finished_at < cutoff))
    clear_expired_previous_secrets(now=now)
    db.session.commit()
    logger.info("pruned %d messages, %d attempts and %d events older than %d days in %d batches",
                report.messages, report.attempts, report.events, retention_days, report.batches)
    return report


def _delete(statement) -> int:
    return db.session.execute(statement.execution_options(synchronize_session=False)).rowcount


def _in_batches(report: PruneReport, delete_batch) -> None:
    """Delete a batch and commit; repeat until a batch deletes nothing, timing each batch."""
    pause = SQLITE_PAUSE_SECONDS if dialect_name() == "sqlite" else 0
    while True:
        started = time.monotonic()
        deleted = delete_batch()
        db.session.commit()
        if not deleted:
            return
        elapsed = time.monotonic() - started
        report.batches += 1
        report.batch_seconds.append(elapsed)
        report.longest_batch_seconds = max(report.longest_batch_seconds, elapsed)
        if pause:
            # SQLite's busy handler polls on a backoff; a gap between batches lets waiting writers in.
            time.sleep(pause)


def prune_log_once() -> PruneReport | None:
    """Run the prune unless another process holds the lock; None when another process is pruning."""
    client = queue_redis()
    lock = client.lock(PRUNE_LOCK_KEY, timeout=PRUNE_LOCK_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        logger.info("prune skipped: another process is pruning the activity log")
        return None
    try:
        report = prune_log(current_app.config["WEBHOOKS_LOG_RETENTION_DAYS"])
        client.set(LAST_PRUNE_KEY, int(time.time()))
    finally:
        lock.release()
    return report


@actor(queue_name="maintenance", max_retries=3, time_limit=3_600_000)
def prune_activity_log() -> None:
    """Nightly: delete activity-log rows older than the retention period and expired replaced secrets (idempotent)."""
    prune_log_once()


def enqueue_nightly_prune() -> None:
    """The scheduler's nightly job: hand the prune to a worker."""
    prune_activity_log.send()


def catch_up_prune() -> bool:
    """At scheduler start: enqueue a prune when none ran in the last day (a restart skipped the night)."""
    last = queue_redis().get(LAST_PRUNE_KEY)
    if last is not None and time.time() - int(last) < PRUNE_EVERY_SECONDS:
        return False
    enqueue_nightly_prune()
    return True
