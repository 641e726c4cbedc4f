"""Retention: delete activity-log rows older than WEBHOOKS_LOG_RETENTION_DAYS, in small batches."""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select

from ..extensions import db
from ..models import Attempt, Event, LoginAttempt, Message, MessageStatus, utcnow

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000


@dataclass
class PruneReport:
    messages: int = 0
    attempts: int = 0
    events: int = 0
    batches: int = 0
    longest_batch_seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list)


def prune_log(retention_days: int, now: datetime | None = None, batch_size: int = BATCH_SIZE) -> PruneReport:
    """Delete finished messages (and their attempts) and orphaned events older than the retention period.

    Commits after every batch so deliveries and pages keep working while it runs; never deletes a
    message that is still Queued or Scheduled retry; safe to run again or concurrently.
    """
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    report = PruneReport()

    def delete_messages(message_ids: list[int]) -> None:
        report.attempts += db.session.execute(
            delete(Attempt).where(Attempt.message_id.in_(message_ids)).execution_options(synchronize_session=False)
        ).rowcount
        report.messages += db.session.execute(
            delete(Message).where(Message.id.in_(message_ids), Message.status.notin_(MessageStatus.PENDING))
            .execution_options(synchronize_session=False)
        ).rowcount

    def delete_events(event_ids: list[int]) -> None:
        report.events += db.session.execute(
            delete(Event).where(Event.id.in_(event_ids)).execution_options(synchronize_session=False)
        ).rowcount

    finished_messages = (
        select(Message.id)
        .where(Message.created_at < cutoff, Message.status.notin_(MessageStatus.PENDING))
        .order_by(Message.created_at)
        .limit(batch_size)
    )
    orphaned_events = (
        select(Event.id)
        .where(Event.created_at < cutoff, ~exists().where(Message.event_id == Event.id))
        .limit(batch_size)
    )
    _in_batches(report, finished_messages, delete_messages)
    _in_batches(report, orphaned_events, delete_events)
    # Sign-in attempts only matter for the lockout window; keep a day of them for investigations.
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at < (now or utcnow()) - timedelta(days=1)))
    db.session.commit()
    logger.info("pruned %d messages, %d attempts and %d events older than %d days in %d batches",
                report.messages, report.attempts, report.events, retention_days, report.batches)
    return report


def _in_batches(report: PruneReport, select_ids, delete_ids) -> None:
    """Select a batch of ids, delete them, commit; repeat until none is left, timing each batch."""
    while True:
        started = time.monotonic()
        ids = list(db.session.scalars(select_ids))
        if not ids:
            db.session.rollback()
            return
        delete_ids(ids)
        db.session.commit()
        elapsed = time.monotonic() - started
        report.batches += 1
        report.batch_seconds.append(elapsed)
        report.longest_batch_seconds = max(report.longest_batch_seconds, elapsed)
