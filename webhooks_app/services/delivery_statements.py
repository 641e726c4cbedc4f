"""The delivery hot path's SQL, built once per process as Core statements with bound parameters.

Building an ORM statement and its cache key on every delivery cost about a third of the worker's CPU;
these statements are compiled once and then only executed with new parameters.
"""

import functools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..models import Attempt, Event, Message, MessageStatus, Webhook
from .streaks import end_streak

messages = Message.__table__
attempts = Attempt.__table__
webhooks = Webhook.__table__
events = Event.__table__

ATTEMPT_COLUMNS = ("message_id", "webhook_id", "number", "started_at", "duration_ms", "succeeded", "status_code",
                   "error_kind", "error_detail", "response_excerpt", "request_headers", "response_headers")
MOVE_ON_COLUMNS = ("status", "attempts_made", "updated_at", "next_attempt_at", "enqueued_at", "failure_reason")


@dataclass(frozen=True)
class ClaimedMessage:
    """A row the claim statements return: a message, its webhook's URL, state and secret, its event's payload."""

    id: int
    message_uuid: str
    webhook_id: int | None
    event_id: int | None
    attempts_made: int
    is_test: bool
    url: str | None  # None: the webhook was deleted
    enabled: bool | None
    secret_encrypted: str | None
    payload: dict | None
    # A reset secret's predecessor and the end of its overlap (None without one).
    previous_secret_encrypted: str | None = None
    previous_secret_expires_at: datetime | None = None

    def previous_secret_at(self, now: datetime) -> str | None:
        """The replaced secret while it still signs deliveries, else None."""
        expires_at = self.previous_secret_expires_at
        return self.previous_secret_encrypted if expires_at is not None and expires_at > now else None

    def previous_secret_expired(self, now: datetime) -> bool:
        """True when the row still holds a replaced secret whose overlap is over (to be removed)."""
        return self.previous_secret_encrypted is not None and self.previous_secret_at(now) is None


def _webhook_column(column):
    return (select(column).where(webhooks.c.id == messages.c.webhook_id).correlate(messages).scalar_subquery()
            .label(column.name))


def _claimable():
    """Due, pending, and not claimed by a live lease."""
    return (
        messages.c.status.in_(MessageStatus.PENDING),
        messages.c.next_attempt_at <= bindparam("now"),
        or_(messages.c.claimed_until.is_(None), messages.c.claimed_until < bindparam("now")),
    )


def _claim_returning(statement):
    payload = (select(events.c.payload).where(events.c.id == messages.c.event_id).correlate(messages)
               .scalar_subquery().label("payload"))
    return statement.values(claimed_until=bindparam("lease_until")).returning(
        messages.c.id, messages.c.message_uuid, messages.c.webhook_id, messages.c.event_id,
        messages.c.attempts_made, messages.c.is_test, _webhook_column(webhooks.c.url),
        _webhook_column(webhooks.c.enabled), _webhook_column(webhooks.c.secret_encrypted), payload,
        _webhook_column(webhooks.c.previous_secret_encrypted), _webhook_column(webhooks.c.previous_secret_expires_at),
    )


@functools.cache
def claim():
    """Take a due, unclaimed (or lease-expired) message and return it with its webhook and event payload."""
    return _claim_returning(update(messages).where(messages.c.id == bindparam("claim_id"), *_claimable()))


@functools.cache
def claim_backlog():
    """Take up to `limit` due, unclaimed messages of one webhook, oldest due first, skipping rows others lock.

    Test messages are left to their own synchronous send.
    """
    # A materialized CTE, not `id IN (SELECT … LIMIT n)`: PostgreSQL may run such a subquery again
    # for each row it updates, each run skipping the rows the last one locked, and claim more than n.
    batch = (
        select(messages.c.id.label("batch_id"))
        .where(messages.c.webhook_id == bindparam("backlog_webhook_id"), messages.c.is_test.is_(False), *_claimable())
        .order_by(messages.c.next_attempt_at, messages.c.id)
        .limit(bindparam("backlog_limit"))
        .with_for_update(skip_locked=True)
        .cte("backlog_batch")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    # The conditions are repeated outside the batch: on PostgreSQL a row re-read after a concurrent
    # claim's commit must still be claimable.
    return _claim_returning(update(messages).where(messages.c.id == batch.c.batch_id, *_claimable()))


@functools.cache
def insert_attempt(dialect: str):
    """One attempt row, none if that message's attempt of that number is stored already (a repeated record).

    Parameters are the column names prefixed with `attempt_`.
    """
    insert_for_dialect = postgresql_insert if dialect == "postgresql" else sqlite_insert
    values = {name: bindparam(f"attempt_{name}") for name in ATTEMPT_COLUMNS}
    # NULL when the webhook was deleted while the message was being sent: the attempt is still recorded.
    values["webhook_id"] = (select(webhooks.c.id).where(webhooks.c.id == bindparam("attempt_webhook_id"))
                            .scalar_subquery())
    return (insert_for_dialect(attempts).values(values)
            .on_conflict_do_nothing(index_elements=[attempts.c.message_id, attempts.c.number]))


@functools.cache
def move_on():
    """Release the claim and set the message's new status, unless this attempt was recorded already.

    Parameters are `move_on_` + column name.
    """
    return (
        update(messages)
        .where(messages.c.id == bindparam("move_on_id"), messages.c.attempts_made < bindparam("move_on_attempts_made"))
        .values({**{name: bindparam(f"move_on_{name}") for name in MOVE_ON_COLUMNS}, "claimed_until": None})
    )


@functools.cache
def record_attempt_in_one_statement():
    """PostgreSQL: the attempt's INSERT rides along the message's UPDATE as a data-modifying CTE."""
    return move_on().add_cte(insert_attempt("postgresql").cte("attempt"))


@functools.cache
def record_success_ending_streak():
    """PostgreSQL: one successful attempt recorded and its webhook's failure streak ended, in one statement (so it
    can run alone in autocommit); parameters are record_attempt_in_one_statement's and end_streak's."""
    return record_attempt_in_one_statement().add_cte(end_streak().cte("ended_streak"))


@functools.cache
def release_claims():
    """Give claimed messages (`release_ids`) back untouched; `release_enqueued_at` says whether one is queued."""
    return (update(messages).where(messages.c.id.in_(bindparam("release_ids", expanding=True)))
            .values(claimed_until=None, enqueued_at=bindparam("release_enqueued_at")))


@functools.cache
def fail_unsent():
    """End messages (`fail_ids`) as Failed without sending them, with `fail_reason` (at `fail_updated_at`)."""
    return (update(messages).where(messages.c.id.in_(bindparam("fail_ids", expanding=True)))
            .values(status=MessageStatus.FAILED, failure_reason=bindparam("fail_reason"), claimed_until=None,
                    next_attempt_at=None, updated_at=bindparam("fail_updated_at")))


@functools.cache
def forget_expired_secret():
    """Remove a webhook's (`expired_webhook_id`) replaced secret if its overlap is over at `expired_now`."""
    return (update(webhooks)
            .where(webhooks.c.id == bindparam("expired_webhook_id"),
                   webhooks.c.previous_secret_expires_at <= bindparam("expired_now"))
            .values(previous_secret_encrypted=None, previous_secret_expires_at=None))
