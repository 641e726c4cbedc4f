"""Failure streaks: a webhook's run of failed deliveries since its last success, and its one warning.

Each statement is a conditional UPDATE of the webhook's row, so concurrent batches in several worker threads
agree without reading first: the first failure after a success starts the streak, a success ends it (unless
the streak began after that success was made), and only one third-attempt failure per streak claims the warning.
Tests never touch a streak.
"""

import functools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, select, update

from ..extensions import db
from ..models import Attempt, Webhook
from .notifications import WARNING, Notification

WARN_AT_ATTEMPT = 3
webhooks = Webhook.__table__
attempts = Attempt.__table__


@dataclass(frozen=True)
class StreakAttempt:
    """What a streak needs of one recorded attempt of a non-test message, in send order."""

    webhook_id: int
    message_id: int
    number: int
    started_at: datetime
    succeeded: bool
    may_warn: bool  # failed, and the message goes on to another attempt


@functools.cache
def end_streak():
    """A success made at `success_at` ends a streak that began before it."""
    return (update(webhooks)
            .where(webhooks.c.id == bindparam("streak_webhook_id"),
                   webhooks.c.failure_streak_started_at <= bindparam("success_at"))
            .values(failure_streak_started_at=None, warned_at=None))


@functools.cache
def start_streak():
    """The first failure with no streak running starts one."""
    return (update(webhooks)
            .where(webhooks.c.id == bindparam("streak_webhook_id"), webhooks.c.failure_streak_started_at.is_(None))
            .values(failure_streak_started_at=bindparam("failed_at")))


@functools.cache
def claim_warning():
    """Claim the streak's one warning: the webhook is enabled, not warned, and its streak began no later than the
    message's first attempt (no success came between that message's failures)."""
    first_attempt = (select(attempts.c.started_at)
                     .where(attempts.c.message_id == bindparam("warn_message_id"), attempts.c.number == 1)
                     .scalar_subquery())
    return (update(webhooks)
            .where(and_(webhooks.c.id == bindparam("streak_webhook_id"), webhooks.c.enabled.is_(True),
                        webhooks.c.warned_at.is_(None), webhooks.c.failure_streak_started_at.is_not(None),
                        webhooks.c.failure_streak_started_at <= first_attempt))
            .values(warned_at=bindparam("warned_at")))


def update_streaks(recorded: list[StreakAttempt], now: datetime) -> list[Notification]:
    """Move the streaks of the recorded attempts' webhooks on; returns the warnings claimed. Callers commit.

    Only the failures after a webhook's last success in these attempts count: one statement ends the streak,
    one starts the next, and a third-attempt failure among those may claim the warning.
    """
    connection = db.session.connection()
    warnings = []
    for webhook_id in sorted({attempt.webhook_id for attempt in recorded}):
        mine = [attempt for attempt in recorded if attempt.webhook_id == webhook_id]
        successes = [index for index, attempt in enumerate(mine) if attempt.succeeded]
        if successes:
            connection.execute(end_streak(), {"streak_webhook_id": webhook_id,
                                              "success_at": mine[successes[-1]].started_at})
        failures = mine[successes[-1] + 1:] if successes else mine
        if not failures:
            continue
        connection.execute(start_streak(), {"streak_webhook_id": webhook_id, "failed_at": failures[0].started_at})
        for attempt in failures:
            if attempt.number == WARN_AT_ATTEMPT and attempt.may_warn:
                claimed = connection.execute(claim_warning(), {
                    "streak_webhook_id": webhook_id, "warn_message_id": attempt.message_id, "warned_at": now})
                if claimed.rowcount:
                    warnings.append(Notification(WARNING, webhook_id, attempt.message_id))
                    break
    return warnings
