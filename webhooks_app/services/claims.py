"""Claims: which worker may send a message now. A claim is a lease on the row; the database is the truth."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from ..database import autocommit_single_statement
from ..extensions import db
from ..models import Message, MessageStatus, Webhook, utcnow
from . import delivery_statements as statements

BATCH_SIZE = 50
# A batch stops starting sends after this long, so a slow endpoint's batch holds its claims (and a
# worker thread) for at most this plus one send's deadline; what is left goes back for the next batch.
BATCH_SECONDS = 1.0


@dataclass(frozen=True)
class ClaimedMessage:
    """A claimed message with what its attempt needs: its columns, its webhook's and its event's payload."""

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


def claim_lease_seconds() -> float:
    """How long a claim lasts: the send deadline plus a margin; a killed worker's claim expires after it."""
    config = current_app.config
    return config["WEBHOOKS_TIMEOUT_SECONDS"] + config["WEBHOOKS_CLAIM_MARGIN_SECONDS"]


def backlog_lease_seconds() -> float:
    """A batch's claims last one batch's sending time longer than a single message's."""
    return BATCH_SECONDS + claim_lease_seconds()


def _claimed(rows) -> list[ClaimedMessage]:
    return sorted((ClaimedMessage(**row._mapping) for row in rows), key=lambda claimed: claimed.id)


def claim_message(message_id: int, now: datetime | None = None) -> ClaimedMessage | None:
    """Atomically take one due, unclaimed (or lease-expired) message; None when it is not ours to send."""
    now = now or utcnow()
    autocommit_single_statement()
    rows = db.session.connection().execute(statements.claim(), {
        "claim_id": message_id, "now": now, "lease_until": now + timedelta(seconds=claim_lease_seconds()),
    })
    claimed = _claimed(rows)
    return claimed[0] if claimed else None


def claim_backlog(webhook_id: int, limit: int = BATCH_SIZE) -> list[ClaimedMessage]:
    """Claim up to `limit` due messages of a webhook, oldest due first, in one statement."""
    now = utcnow()
    autocommit_single_statement()
    return _claimed(db.session.connection().execute(statements.claim_backlog(), {
        "backlog_webhook_id": webhook_id, "backlog_limit": limit, "now": now,
        "lease_until": now + timedelta(seconds=backlog_lease_seconds()),
    }))


def release_claims(message_ids: list[int], requeued: bool = False) -> None:
    """Give claimed messages back untouched; `requeued` when a queue entry for them is already on its way."""
    if message_ids:
        db.session.execute(
            update(Message).where(Message.id.in_(message_ids))
            .values(claimed_until=None, enqueued_at=utcnow() if requeued else None)
            .execution_options(synchronize_session=False)
        )


def webhook_url(webhook_id: int) -> str | None:
    """The webhook's URL, None when it was deleted."""
    autocommit_single_statement()
    url = db.session.scalar(select(Webhook.url).where(Webhook.id == webhook_id))
    db.session.commit()
    return url


@dataclass(frozen=True)
class DueMessage:
    """A message the sweeper found due and marked as enqueued."""

    id: int
    webhook_id: int | None
    is_test: bool


def mark_due_messages(limit: int, requeue_after_seconds: float, now: datetime | None = None) -> list[DueMessage]:
    """Mark and return messages that are due, not in flight, and not already waiting in the queue."""
    now = now or utcnow()
    stale = now - timedelta(seconds=requeue_after_seconds)
    candidates = list(db.session.scalars(
        select(Message.id)
        .where(
            Message.status.in_(MessageStatus.PENDING),
            Message.next_attempt_at <= now,
            or_(Message.claimed_until.is_(None), Message.claimed_until < now),
            or_(Message.enqueued_at.is_(None), Message.enqueued_at < stale),
        )
        .order_by(Message.next_attempt_at)
        .limit(limit)
    ))
    if not candidates:
        return []
    marked = db.session.execute(
        update(Message)
        .where(Message.id.in_(candidates), or_(Message.enqueued_at.is_(None), Message.enqueued_at < stale))
        .values(enqueued_at=now)
        .returning(Message.id, Message.webhook_id, Message.is_test)
        .execution_options(synchronize_session=False)
    )
    return sorted((DueMessage(*row) for row in marked), key=lambda message: message.id)
