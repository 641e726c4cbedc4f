"""Deliver one message attempt: claim it, send it, record the attempt, schedule a retry or fail."""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import or_, select, update

from .. import PRODUCT_NAME, PRODUCT_VERSION
from ..database import autocommit_single_statement, dialect_name
from ..extensions import db
from ..models import Message, MessageStatus, Webhook, utcnow
from ..secrets_vault import SecretUnreadable, decrypt_secret
from . import delivery_statements as statements
from .signing import delivery_headers, message_body
from .transport import SendResult, post_json

logger = logging.getLogger(__name__)

USER_AGENT = f"{PRODUCT_NAME}/{PRODUCT_VERSION} (+webhook delivery)"

LIKELY_CAUSES = {
    "dns": "Likely cause: an invalid endpoint URL or a typo (the host name could not be resolved).",
    "timeout": "Likely cause: a temporary network error, or the endpoint did not respond within {timeout:g} seconds.",
    "refused": "Likely cause: the endpoint server is not accepting connections.",
    "connection": "Likely cause: the endpoint server is not accepting connections.",
    "tls": "Likely cause: the endpoint is not configured to use HTTPS, or there is a certificate problem.",
    "forbidden_address": "Likely cause: the endpoint URL points to a private or reserved address, "
                         "which deliveries may not reach.",
    "redirect": "Likely cause: the endpoint redirects instead of answering; use the final URL.",
    "http_status": "Likely cause: the endpoint answered with an error instead of a 2xx status.",
}


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one call to deliver_message did."""

    action: str  # sent, retry_scheduled, failed, not_due, deferred
    result: SendResult | None = None


def total_attempts() -> int:
    return 1 + len(current_app.config["WEBHOOKS_RETRY_DELAYS"])


def claim_lease_seconds() -> float:
    """How long a claim lasts: the send deadline plus a margin; a killed worker's claim expires after it."""
    config = current_app.config
    return config["WEBHOOKS_TIMEOUT_SECONDS"] + config["WEBHOOKS_CLAIM_MARGIN_SECONDS"]


def likely_cause(error_kind: str | None) -> str:
    template = LIKELY_CAUSES.get(error_kind or "", LIKELY_CAUSES["connection"])
    return template.format(timeout=current_app.config["WEBHOOKS_TIMEOUT_SECONDS"])


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


def claim_message(message_id: int, now: datetime | None = None) -> ClaimedMessage | None:
    """Atomically take a due, unclaimed (or lease-expired) message and read what sending it needs.

    One statement: None when the message is not ours to send.
    """
    now = now or utcnow()
    autocommit_single_statement()
    row = db.session.connection().execute(statements.claim(), {
        "claim_id": message_id, "now": now, "lease_until": now + timedelta(seconds=claim_lease_seconds()),
    }).one_or_none()
    return ClaimedMessage(*row) if row else None


def release_claim(message_id: int, requeued: bool = False) -> None:
    """Give a claimed message back untouched; `requeued` when a queue entry for it is already on its way."""
    autocommit_single_statement()
    db.session.execute(
        update(Message).where(Message.id == message_id)
        .values(claimed_until=None, enqueued_at=utcnow() if requeued else None)
        .execution_options(synchronize_session=False)
    )


def fail_messages(message_ids: list[int], reason: str) -> None:
    """End messages as Failed without sending them; they are never sent again."""
    db.session.execute(
        update(Message).where(Message.id.in_(message_ids))
        .values(status=MessageStatus.FAILED, failure_reason=reason, claimed_until=None, next_attempt_at=None,
                updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def unsendable_reason(claimed: ClaimedMessage) -> str | None:
    """Why a claimed message may not be sent at all (its webhook deleted or disabled), or None."""
    if claimed.url is not None and claimed.enabled:
        return None
    why = "its webhook was deleted" if claimed.url is None else "its webhook is disabled"
    return f"Not sent: {why} when the attempt came due."


def disable_webhook_after_failures(webhook_id: int, number: int, result: SendResult) -> None:
    """Disable a webhook whose message used up every retry, storing why and when."""
    what = result.error_detail or "the delivery failed"
    reason = (f"All {number} delivery attempts of a message failed; the last one: {what}. "
              f"{likely_cause(result.error_kind)}")
    disabled = db.session.execute(
        update(Webhook).where(Webhook.id == webhook_id, Webhook.enabled.is_(True))
        .values(enabled=False, disabled_at=utcnow(), disabled_reason=reason, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if disabled.rowcount:
        logger.warning("webhook %s disabled after %s failed attempts (%s)", webhook_id, number, result.error_kind)


@dataclass(frozen=True)
class AttemptRecord:
    """The rows one attempt writes: its Attempt row and its message's move to the next status."""

    attempt: dict
    move_on: dict
    status: str
    disables_webhook: bool
    result: SendResult


def attempt_record(claimed: ClaimedMessage, number: int, started_at: datetime, result: SendResult) -> AttemptRecord:
    """Decide where an attempt leaves its message: Sent, Scheduled retry, or Failed."""
    now = utcnow()
    next_attempt_at = failure_reason = None
    if result.succeeded:
        status = MessageStatus.SENT
    elif claimed.is_test:
        status = MessageStatus.FAILED
        failure_reason = f"The test delivery failed: {result.error_detail}."
    elif number < total_attempts():
        status = MessageStatus.SCHEDULED_RETRY
        next_attempt_at = now + timedelta(seconds=current_app.config["WEBHOOKS_RETRY_DELAYS"][number - 1])
    else:
        status = MessageStatus.FAILED
        failure_reason = f"All {number} attempts failed; the last one: {result.error_detail}."
    attempt = {
        "attempt_message_id": claimed.id, "attempt_webhook_id": claimed.webhook_id, "attempt_number": number,
        "attempt_started_at": started_at, "attempt_duration_ms": result.duration_ms,
        "attempt_succeeded": result.succeeded, "attempt_status_code": result.status_code,
        "attempt_error_kind": result.error_kind, "attempt_error_detail": result.error_detail,
        "attempt_response_excerpt": result.response_excerpt,
    }
    move_on = {
        "move_on_id": claimed.id, "move_on_status": status, "move_on_attempts_made": number, "move_on_updated_at": now,
        "move_on_next_attempt_at": next_attempt_at, "move_on_failure_reason": failure_reason,
    }
    disables_webhook = status == MessageStatus.FAILED and not claimed.is_test and claimed.webhook_id is not None
    return AttemptRecord(attempt, move_on, status, disables_webhook, result)


def record_attempt(claimed: ClaimedMessage, number: int, started_at: datetime, result: SendResult) -> str:
    """Store an attempt and move the message on: Sent, Scheduled retry, or Failed (disabling its webhook).

    Returns the message's new status. No reads, and on PostgreSQL one statement (the attempt's INSERT
    rides along the message's UPDATE): this runs once per delivery.
    """
    record = attempt_record(claimed, number, started_at, result)
    if dialect_name() == "postgresql" and not record.disables_webhook:
        autocommit_single_statement()
        db.session.connection().execute(statements.record_attempt_in_one_statement(),
                                        {**record.attempt, **record.move_on})
    else:
        connection = db.session.connection()
        connection.execute(statements.insert_attempt(), record.attempt)
        connection.execute(statements.move_on(), record.move_on)
        if record.disables_webhook:
            disable_webhook_after_failures(claimed.webhook_id, number, result)
    return record.status


def record_attempts(records: list[AttemptRecord]) -> None:
    """Store several attempts in the caller's transaction, each statement executed once for all of them."""
    connection = db.session.connection()
    if dialect_name() == "postgresql":
        connection.execute(statements.record_attempt_in_one_statement(),
                           [{**record.attempt, **record.move_on} for record in records])
    else:
        connection.execute(statements.insert_attempt(), [record.attempt for record in records])
        connection.execute(statements.move_on(), [record.move_on for record in records])
    for record in records:
        if record.disables_webhook:
            disable_webhook_after_failures(record.attempt["attempt_webhook_id"],
                                           record.move_on["move_on_attempts_made"], record.result)


@dataclass(frozen=True)
class PreparedSend:
    """Everything one attempt needs, copied out of the database so the send touches no row."""

    message_id: int
    message_uuid: str
    url: str
    body: bytes
    headers: dict[str, str]
    attempt_number: int


def prepare_send(claimed: ClaimedMessage) -> PreparedSend:
    """Build the body and signed headers of the next attempt; messageTime is this send's time."""
    secret = decrypt_secret(claimed.secret_encrypted)
    message_time = int(time.time())
    body = message_body(claimed.payload, secret, message_time, claimed.message_uuid, claimed.webhook_id)
    headers = delivery_headers(secret, claimed.message_uuid, message_time, body, USER_AGENT)
    return PreparedSend(claimed.id, claimed.message_uuid, claimed.url, body, headers, claimed.attempts_made + 1)


def send_prepared(prepared: PreparedSend) -> SendResult:
    """POST a prepared message with the configured deadline, guard and certificate authorities."""
    config = current_app.config
    return post_json(
        prepared.url, prepared.body, prepared.headers,
        timeout=config["WEBHOOKS_TIMEOUT_SECONDS"],
        allow_private=config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"],
        verify=config["WEBHOOKS_CA_BUNDLE"] or True,
    )


def endpoint_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or 443}"


def deliver_message(message_id: int, endpoint_slots=None) -> DeliveryOutcome:
    """Make the message's next attempt if it is due and nobody else holds it; commits as it goes."""
    claimed = claim_message(message_id)
    db.session.commit()  # never hold a transaction (or SQLite's write lock) across the network call
    if claimed is None:
        return DeliveryOutcome("not_due")
    reason = unsendable_reason(claimed)
    if reason:
        fail_messages([claimed.id], reason)
        db.session.commit()
        return DeliveryOutcome("failed")
    key = endpoint_key(claimed.url)
    if endpoint_slots and not endpoint_slots.acquire(key, claimed.message_uuid):
        release_claim(claimed.id, requeued=True)
        db.session.commit()
        return DeliveryOutcome("deferred")
    try:
        prepared = prepare_send(claimed)
    except SecretUnreadable as error:
        if endpoint_slots:
            endpoint_slots.release(key, claimed.message_uuid)
        fail_messages([claimed.id], f"Not sent: {error}.")
        db.session.commit()
        return DeliveryOutcome("failed")
    started_at = utcnow()
    try:
        result = send_prepared(prepared)
    finally:
        if endpoint_slots:
            endpoint_slots.release(key, prepared.message_uuid)
    status = record_attempt(claimed, prepared.attempt_number, started_at, result)
    db.session.commit()
    if result.succeeded:
        return DeliveryOutcome("sent", result)
    return DeliveryOutcome("failed" if status == MessageStatus.FAILED else "retry_scheduled", result)


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


