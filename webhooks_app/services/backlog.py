"""Deliver a webhook's due messages as a batch: one claim, the sends in order on one connection, one write."""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from ..database import autocommit_single_statement
from ..extensions import db
from ..models import Message, Webhook, utcnow
from ..secrets_vault import SecretUnreadable
from . import delivery_statements as statements
from .delivery import (
    ClaimedMessage,
    attempt_record,
    claim_lease_seconds,
    endpoint_key,
    fail_messages,
    prepare_send,
    record_attempts,
    send_prepared,
    unsendable_reason,
)
from .endpoint_slots import BUSY_NOT_SLOW_SECONDS

BATCH_SIZE = 50
# A batch stops starting sends after this long, so a slow endpoint's batch holds its claims (and a
# worker thread) for at most this plus one send's deadline; what is left goes back for the next batch.
BATCH_SECONDS = 1.0
# A batch waits this long for a busy endpoint's slot while the batches there are young, instead of
# stepping aside: the others finish within BATCH_SECONDS, and stepping aside costs a queue round.
SLOT_WAIT_SECONDS = 0.5


@dataclass(frozen=True)
class BacklogOutcome:
    """What one call to deliver_backlog did; `more` when messages may still be due for the webhook."""

    sent: int = 0
    failed: int = 0
    deferred: bool = False
    more: bool = False


def backlog_lease_seconds() -> float:
    return BATCH_SECONDS + claim_lease_seconds()


def claim_backlog(webhook_id: int, limit: int = BATCH_SIZE) -> list[ClaimedMessage]:
    """Claim up to `limit` due messages of a webhook, oldest due first, in one statement."""
    now = utcnow()
    autocommit_single_statement()
    rows = db.session.connection().execute(statements.claim_backlog(), {
        "backlog_webhook_id": webhook_id, "backlog_limit": limit, "now": now,
        "lease_until": now + timedelta(seconds=backlog_lease_seconds()),
    }).all()
    return sorted((ClaimedMessage(*row) for row in rows), key=lambda claimed: claimed.id)


def release_claims(message_ids: list[int]) -> None:
    """Give claimed messages back untouched: a later batch (already asked for) sends them."""
    if message_ids:
        db.session.execute(
            update(Message).where(Message.id.in_(message_ids)).values(claimed_until=None)
            .execution_options(synchronize_session=False)
        )


def webhook_url(webhook_id: int) -> str | None:
    """The webhook's URL, None when it was deleted."""
    autocommit_single_statement()
    url = db.session.scalar(select(Webhook.url).where(Webhook.id == webhook_id))
    db.session.commit()
    return url


def deliver_backlog(webhook_id: int, endpoint_slots=None, limit: int = BATCH_SIZE,
                    on_full_batch: Callable[[], object] | None = None) -> BacklogOutcome:
    """Send a webhook's due messages in order, holding one endpoint slot; commits as it goes.

    The slot is taken before anything is claimed: a busy endpoint defers the batch at the cost of
    one read, not of claiming and releasing its messages. `on_full_batch` runs after a claim that
    took `limit` messages, before the sends.
    """
    url = webhook_url(webhook_id) if endpoint_slots else None
    if url is None:
        return _send_batch(webhook_id, limit, on_full_batch)
    key, holder = endpoint_key(url), str(uuid.uuid4())
    if not endpoint_slots.acquire(key, holder, wait_seconds=SLOT_WAIT_SECONDS,
                                  young_seconds=BATCH_SECONDS + BUSY_NOT_SLOW_SECONDS):
        return BacklogOutcome(deferred=True, more=True)
    try:
        return _send_batch(webhook_id, limit, on_full_batch)
    finally:
        endpoint_slots.release(key, holder)


def _send_batch(webhook_id: int, limit: int, on_full_batch) -> BacklogOutcome:
    claimed = claim_backlog(webhook_id, limit)
    db.session.commit()  # never hold a transaction (or SQLite's write lock) across the network calls
    if not claimed:
        return BacklogOutcome()
    if on_full_batch and len(claimed) == limit:
        on_full_batch()
    ids = [message.id for message in claimed]
    reason = unsendable_reason(claimed[0])
    if reason:
        fail_messages(ids, reason)
        db.session.commit()
        return BacklogOutcome(failed=len(ids), more=len(ids) == limit)
    records = []
    failed_unsent = False
    stop_after = time.monotonic() + BATCH_SECONDS
    try:
        for message in claimed:
            if records and time.monotonic() > stop_after:
                break
            prepared = prepare_send(message)
            started_at = utcnow()
            result = send_prepared(prepared)
            records.append(attempt_record(message, prepared.attempt_number, started_at, result))
    except SecretUnreadable as error:
        fail_messages(ids[len(records):], f"Not sent: {error}.")
        failed_unsent = True
    finally:
        # Also when a send raised something unexpected: the attempts already made are recorded, so
        # their messages do not go out a second time once the claims expire.
        if records:
            record_attempts(records)
        if not failed_unsent:
            release_claims(ids[len(records):])
        db.session.commit()
    unsent = [] if failed_unsent else ids[len(records):]
    sent = sum(record.result.succeeded for record in records)
    failed = len(ids) - len(unsent) - sent
    return BacklogOutcome(sent=sent, failed=failed, more=len(ids) == limit or bool(unsent))
