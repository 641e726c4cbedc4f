"""Record: store each attempt and move its message on (Sent, Scheduled retry or Failed); disable a webhook.

The fourth step of the delivery path (intake → dispatch → send → record).
"""

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from flask import current_app
from sqlalchemy import exc, update

from ..database import dialect_name
from ..extensions import db
from ..models import MessageStatus, Webhook, utcnow
from . import delivery_statements as statements
from .delivery_statements import ClaimedMessage
from .transport import SendResult

logger = logging.getLogger(__name__)

# Recording survives a dropped database connection: tried again on a fresh one, within the claim's margin.
RECORD_TRIES = 6
RECORD_BACKOFF_SECONDS = (0.05, 0.2, 0.5, 1.0, 2.0)

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
    "unexpected": "Likely cause: an error in this service while sending; its log has the details.",
}


class Outcome(StrEnum):
    """Where one delivery call left a message."""

    SENT = "sent"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    NOT_DUE = "not_due"  # someone else holds it, or nothing is owed
    DEFERRED = "deferred"  # the endpoint had no free send slot: it goes back to the queue


STATUS_OUTCOMES = {MessageStatus.SENT: Outcome.SENT, MessageStatus.SCHEDULED_RETRY: Outcome.RETRY_SCHEDULED,
                   MessageStatus.FAILED: Outcome.FAILED}


def total_attempts() -> int:
    return 1 + len(current_app.config["WEBHOOKS_RETRY_DELAYS"])


def likely_cause(error_kind: str | None) -> str:
    template = LIKELY_CAUSES.get(error_kind or "", LIKELY_CAUSES["connection"])
    return template.format(timeout=current_app.config["WEBHOOKS_TIMEOUT_SECONDS"])


@dataclass(frozen=True)
class AttemptRecord:
    """The rows one attempt writes: its Attempt row and its message's move to the next status."""

    attempt: dict
    move_on: dict
    status: str
    next_attempt_at: datetime | None
    disables_webhook: bool
    result: SendResult

    @property
    def outcome(self) -> Outcome:
        return STATUS_OUTCOMES[self.status]


def attempt_record(claimed: ClaimedMessage, number: int, started_at: datetime, result: SendResult,
                   request_headers: dict[str, str] | None = None) -> AttemptRecord:
    """Decide where an attempt leaves its message: Sent, Scheduled retry, or Failed.

    `request_headers` are the headers sent (the signature, never the secret), kept for the log's details.
    """
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
        "attempt_request_headers": json.dumps(request_headers) if request_headers else None,
        "attempt_response_headers": json.dumps(result.response_headers) if result.response_headers else None,
    }
    move_on = {
        "move_on_id": claimed.id, "move_on_status": status, "move_on_attempts_made": number, "move_on_updated_at": now,
        "move_on_next_attempt_at": next_attempt_at, "move_on_failure_reason": failure_reason,
        # A retry is put on the queue with a delay when it is scheduled: the sweeper leaves it alone until
        # it is overdue by WEBHOOKS_REQUEUE_AFTER_SECONDS (a delayed entry lost with Redis).
        "move_on_enqueued_at": next_attempt_at,
    }
    disables_webhook = status == MessageStatus.FAILED and not claimed.is_test and claimed.webhook_id is not None
    return AttemptRecord(attempt, move_on, status, next_attempt_at, disables_webhook, result)


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


def _write(records: list[AttemptRecord], release_ids: list[int], fail_ids: list[int], fail_reason: str,
           released_enqueued_at: datetime | None) -> None:
    connection = db.session.connection()
    if records:
        if dialect_name() == "postgresql":
            connection.execute(statements.record_attempt_in_one_statement(),
                               [{**record.attempt, **record.move_on} for record in records])
        else:
            connection.execute(statements.insert_attempt("sqlite"), [record.attempt for record in records])
            connection.execute(statements.move_on(), [record.move_on for record in records])
    for record in records:
        if record.disables_webhook:
            disable_webhook_after_failures(record.attempt["attempt_webhook_id"],
                                           record.move_on["move_on_attempts_made"], record.result)
    if release_ids:
        connection.execute(statements.release_claims(),
                           {"release_ids": release_ids, "release_enqueued_at": released_enqueued_at})
    if fail_ids:
        connection.execute(statements.fail_unsent(),
                           {"fail_ids": fail_ids, "fail_reason": fail_reason, "fail_updated_at": utcnow()})
    db.session.commit()


def record_batch(records: list[AttemptRecord], release_ids: Sequence[int] = (), fail_ids: Sequence[int] = (),
                 fail_reason: str = "", requeued: bool = False) -> None:
    """Store attempts, give back unsent claims and fail unsendable messages in one transaction, and commit.

    `requeued`: a queue entry for the released messages is already on its way (the sweeper can wait).

    The endpoint already answered these attempts: a database connection that drops now must not leave them
    unrecorded (their messages would be sent again when the claims expire). Writing again is a no-op for
    what was already stored, so the write is retried on a fresh connection, a few times within the claim's
    margin.
    """
    for number in range(1, RECORD_TRIES + 1):
        try:
            _write(records, list(release_ids), list(fail_ids), fail_reason, utcnow() if requeued else None)
            return
        except (exc.OperationalError, exc.InterfaceError) as error:
            db.session.rollback()
            if number == RECORD_TRIES:
                raise
            pause = RECORD_BACKOFF_SECONDS[min(number, len(RECORD_BACKOFF_SECONDS)) - 1]
            logger.warning("recording %d attempt(s) failed (%s: %s); trying again in %g s on a new connection",
                           len(records), type(error.orig).__name__, str(error.orig).strip()[:200], pause)
            time.sleep(pause)
