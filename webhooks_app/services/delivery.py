"""Deliver one message attempt: claim it, send it, record the attempt, schedule a retry or fail."""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import or_, select, update

from .. import PRODUCT_NAME, PRODUCT_VERSION
from ..extensions import db
from ..models import Attempt, Message, MessageStatus, Webhook, utcnow
from ..secrets_vault import SecretUnreadable, decrypt_secret
from .certificates import verify_setting
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


def claim_message(message_id: int, now: datetime | None = None) -> bool:
    """Atomically take a due, unclaimed (or lease-expired) message; False when another worker has it."""
    now = now or utcnow()
    lease = timedelta(seconds=claim_lease_seconds())
    claimed = db.session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.status.in_(MessageStatus.PENDING),
            Message.next_attempt_at <= now,
            or_(Message.claimed_until.is_(None), Message.claimed_until < now),
        )
        .values(claimed_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def release_claim(message_id: int) -> None:
    """Give a claimed message back untouched, so any worker may take it when it is due."""
    db.session.execute(
        update(Message).where(Message.id == message_id).values(claimed_until=None, enqueued_at=None)
        .execution_options(synchronize_session=False)
    )


def fail_message(message: Message, reason: str) -> None:
    """End a message as Failed; it is never sent again."""
    message.status = MessageStatus.FAILED
    message.failure_reason = reason
    message.claimed_until = None
    message.next_attempt_at = None
    message.updated_at = utcnow()


def disable_webhook_after_failures(webhook: Webhook, attempt: Attempt) -> None:
    """Disable a webhook whose message used up every retry, storing why and when."""
    if not webhook.enabled:
        return
    what = attempt.error_detail or "the delivery failed"
    webhook.enabled = False
    webhook.disabled_at = utcnow()
    webhook.disabled_reason = (
        f"All {attempt.number} delivery attempts of a message failed; the last one: {what}. "
        f"{likely_cause(attempt.error_kind)}"
    )
    logger.warning("webhook %s disabled after %s failed attempts (%s)", webhook.id, attempt.number,
                   attempt.error_kind)


def record_attempt(message_id: int, number: int, started_at: datetime, result: SendResult) -> Message:
    """Store an attempt and move the message on: Sent, Scheduled retry, or Failed (disabling its webhook)."""
    message = db.session.get(Message, message_id, with_for_update=True)
    attempt = Attempt(
        message_id=message.id, webhook_id=message.webhook_id, number=number, started_at=started_at,
        duration_ms=result.duration_ms,
        succeeded=result.succeeded, status_code=result.status_code, error_kind=result.error_kind,
        error_detail=result.error_detail, response_excerpt=result.response_excerpt,
    )
    db.session.add(attempt)
    now = utcnow()
    message.attempts_made = number
    message.updated_at = now
    message.claimed_until = None
    if result.succeeded:
        message.status = MessageStatus.SENT
        message.next_attempt_at = None
        message.failure_reason = None
    elif message.is_test:
        fail_message(message, f"The test delivery failed: {result.error_detail}.")
    elif number < total_attempts():
        delay = current_app.config["WEBHOOKS_RETRY_DELAYS"][number - 1]
        message.status = MessageStatus.SCHEDULED_RETRY
        message.next_attempt_at = now + timedelta(seconds=delay)
        message.enqueued_at = None
    else:
        fail_message(message, f"All {number} attempts failed; the last one: {result.error_detail}.")
        webhook = db.session.get(Webhook, message.webhook_id) if message.webhook_id else None
        if webhook is not None:
            disable_webhook_after_failures(webhook, attempt)
    db.session.flush()
    return message


@dataclass(frozen=True)
class PreparedSend:
    """Everything one attempt needs, copied out of the session so the send touches no database row."""

    message_id: int
    message_uuid: str
    url: str
    body: bytes
    headers: dict[str, str]
    attempt_number: int


def prepare_send(message: Message, webhook: Webhook) -> PreparedSend:
    """Build the body and signed headers of the next attempt; messageTime is this send's time."""
    secret = decrypt_secret(webhook.secret_encrypted)
    message_time = int(time.time())
    body = message_body(message.event.payload, secret, message_time, message.message_uuid, webhook.id)
    headers = delivery_headers(secret, message.message_uuid, message_time, body, USER_AGENT)
    return PreparedSend(message.id, message.message_uuid, webhook.url, body, headers, message.attempts_made + 1)


def send_prepared(prepared: PreparedSend) -> SendResult:
    """POST a prepared message with the configured deadline, guard and certificate authorities."""
    config = current_app.config
    return post_json(
        prepared.url, prepared.body, prepared.headers,
        timeout=config["WEBHOOKS_TIMEOUT_SECONDS"],
        allow_private=config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"],
        verify=verify_setting(config["WEBHOOKS_CA_BUNDLE"]),
    )


def endpoint_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or 443}"


def deliver_message(message_id: int, endpoint_slots=None) -> DeliveryOutcome:
    """Make the message's next attempt if it is due and nobody else holds it; commits as it goes."""
    if not claim_message(message_id):
        db.session.rollback()
        return DeliveryOutcome("not_due")
    message = db.session.get(Message, message_id)
    webhook = db.session.get(Webhook, message.webhook_id) if message.webhook_id else None
    if webhook is None or not webhook.enabled:
        why = "its webhook was deleted" if webhook is None else "its webhook is disabled"
        fail_message(message, f"Not sent: {why} when the attempt came due.")
        db.session.commit()
        return DeliveryOutcome("failed")
    try:
        prepared = prepare_send(message, webhook)
    except SecretUnreadable as error:
        fail_message(message, f"Not sent: {error}.")
        db.session.commit()
        return DeliveryOutcome("failed")
    key = endpoint_key(prepared.url)
    # Never hold a transaction (or SQLite's write lock) across the network call: after this commit
    # only `prepared` is used, since touching an expired ORM object would begin a new transaction.
    db.session.commit()
    slot = endpoint_slots.acquire(key, prepared.message_uuid) if endpoint_slots else True
    if not slot:
        release_claim(message_id)
        db.session.commit()
        return DeliveryOutcome("deferred")
    started_at = utcnow()
    try:
        result = send_prepared(prepared)
    finally:
        if endpoint_slots:
            endpoint_slots.release(key, prepared.message_uuid)
    message = record_attempt(message_id, prepared.attempt_number, started_at, result)
    db.session.commit()
    if result.succeeded:
        return DeliveryOutcome("sent", result)
    return DeliveryOutcome("failed" if message.status == MessageStatus.FAILED else "retry_scheduled", result)


def due_message_ids(limit: int, requeue_after_seconds: float, now: datetime | None = None) -> list[int]:
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
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(marked.scalars())


