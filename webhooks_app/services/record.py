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

from ..database import autocommit_single_statement, dialect_name
from ..extensions import db
from ..models import MessageStatus, Webhook, utcnow
from . import delivery_statements as statements
from .delivery_statements import ClaimedMessage
from .failure_causes import GONE_REASON, GONE_STATUS, MAX_RETRY_AFTER_SECONDS, likely_cause, total_attempts, wait_words
from .notifications import DISABLED, Notification, enqueue_notifications, store_notifications
from .streaks import StreakAttempt, update_streaks
from .transport import SendResult

logger = logging.getLogger(__name__)

# Recording survives a dropped database connection: tried again on a fresh one, within the claim's margin.
RECORD_TRIES = 6
RECORD_BACKOFF_SECONDS = (0.05, 0.2, 0.5, 1.0, 2.0)

class Outcome(StrEnum):
    """Where one delivery call left a message."""

    SENT = "sent"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    NOT_DUE = "not_due"  # someone else holds it, or nothing is owed
    DEFERRED = "deferred"  # the endpoint had no free send slot: it goes back to the queue


STATUS_OUTCOMES = {MessageStatus.SENT: Outcome.SENT, MessageStatus.SCHEDULED_RETRY: Outcome.RETRY_SCHEDULED,
                   MessageStatus.FAILED: Outcome.FAILED}


@dataclass(frozen=True)
class AttemptRecord:
    """The rows one attempt writes: its Attempt row and its message's move to the next status."""

    attempt: dict
    move_on: dict
    status: str
    next_attempt_at: datetime | None
    disables_webhook: bool
    result: SendResult
    counts: bool = True  # toward the webhook's failure streak and disabling (a test message does not)

    @property
    def outcome(self) -> Outcome:
        return STATUS_OUTCOMES[self.status]

    def streak_attempt(self) -> StreakAttempt:
        return StreakAttempt(self.attempt["attempt_webhook_id"], self.attempt["attempt_message_id"],
                             self.attempt["attempt_number"], self.attempt["attempt_started_at"],
                             self.result.succeeded, self.status == MessageStatus.SCHEDULED_RETRY)


def storable(text: str | None) -> str | None:
    """Text every database column holds: a NUL (PostgreSQL's text refuses it) or a lone surrogate becomes U+FFFD,
    as undecodable bytes of an answer already do. An endpoint's answer is untrusted."""
    if not text:
        return text
    return text.replace("\x00", "\ufffd").encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def retry_wait(number: int, result: SendResult) -> tuple[float, str]:
    """Seconds before the attempt after attempt `number`: the ladder's, or longer when the endpoint's Retry-After
    asks (capped at 24 h); and what to add to the attempt's details about it."""
    ladder = current_app.config["WEBHOOKS_RETRY_DELAYS"][number - 1]
    asked = result.retry_after_seconds
    if asked is None:
        return ladder, ""
    capped = min(asked, MAX_RETRY_AFTER_SECONDS)
    if capped <= ladder:
        return ladder, (f"; the endpoint's Retry-After ({wait_words(asked)}) is within the retry ladder's "
                        f"wait of {wait_words(ladder)}")
    cap_note = f", capped at {wait_words(MAX_RETRY_AFTER_SECONDS)}" if asked > capped else ""
    return capped, (f"; the endpoint asked to wait {wait_words(asked)} (Retry-After){cap_note}: "
                    f"the next attempt is no earlier than that")


def attempt_record(claimed: ClaimedMessage, number: int, started_at: datetime, result: SendResult,
                   request_headers: dict[str, str] | None = None) -> AttemptRecord:
    """Decide where an attempt leaves its message: Sent, Scheduled retry, or Failed.

    `request_headers` are the headers sent (the signature, never the secret), kept for the log's details.
    """
    now = utcnow()
    next_attempt_at = failure_reason = None
    error_detail = result.error_detail
    if result.succeeded:
        status = MessageStatus.SENT
    elif claimed.is_test:
        status = MessageStatus.FAILED
        failure_reason = f"The test delivery failed: {result.error_detail}."
    elif result.status_code == GONE_STATUS:
        status = MessageStatus.FAILED
        failure_reason = GONE_REASON
    elif number < total_attempts():
        status = MessageStatus.SCHEDULED_RETRY
        wait, note = retry_wait(number, result)
        next_attempt_at = now + timedelta(seconds=wait)
        error_detail = f"{error_detail}{note}"
    else:
        status = MessageStatus.FAILED
        failure_reason = f"All {number} attempts failed; the last one: {result.error_detail}."
    attempt = {
        "attempt_message_id": claimed.id, "attempt_webhook_id": claimed.webhook_id, "attempt_number": number,
        "attempt_started_at": started_at, "attempt_duration_ms": result.duration_ms,
        "attempt_succeeded": result.succeeded, "attempt_status_code": result.status_code,
        "attempt_error_kind": result.error_kind, "attempt_error_detail": storable(error_detail),
        "attempt_response_excerpt": storable(result.response_excerpt),
        "attempt_request_headers": json.dumps(request_headers) if request_headers else None,
        "attempt_response_headers": json.dumps(result.response_headers) if result.response_headers else None,
    }
    move_on = {
        "move_on_id": claimed.id, "move_on_status": status, "move_on_attempts_made": number, "move_on_updated_at": now,
        "move_on_next_attempt_at": next_attempt_at, "move_on_failure_reason": storable(failure_reason),
        # A retry is put on the queue with a delay when it is scheduled: the sweeper leaves it alone until
        # it is overdue by WEBHOOKS_REQUEUE_AFTER_SECONDS (a delayed entry lost with Redis).
        "move_on_enqueued_at": next_attempt_at,
    }
    counts = not claimed.is_test and claimed.webhook_id is not None
    disables_webhook = status == MessageStatus.FAILED and counts
    return AttemptRecord(attempt, move_on, status, next_attempt_at, disables_webhook, result, counts)


def disable_webhook_after_failures(webhook_id: int, message_id: int, number: int,
                                   result: SendResult) -> Notification | None:
    """Disable a webhook whose message used up every retry (or whose endpoint answered 410 Gone), storing why and
    when; returns the Disabled notification when this call disabled it."""
    if result.status_code == GONE_STATUS:
        reason = GONE_REASON
    else:
        what = result.error_detail or "the delivery failed"
        reason = (f"All {number} delivery attempts of a message failed; the last one: {what}. "
                  f"{likely_cause(result.error_kind)}")
    disabled = db.session.execute(
        update(Webhook).where(Webhook.id == webhook_id, Webhook.enabled.is_(True))
        .values(enabled=False, disabled_at=utcnow(), disabled_reason=reason, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not disabled.rowcount:
        return None
    logger.warning("webhook %s disabled after %s failed attempt(s) (%s)", webhook_id, number,
                   "410 Gone" if result.status_code == GONE_STATUS else result.error_kind)
    return Notification(DISABLED, webhook_id, message_id)


def _write_one_success(record: AttemptRecord) -> None:
    """PostgreSQL: a batch of one successful attempt (a fan-out's) in one autocommitted statement, where the
    general path sends BEGIN, the record, the streak's end and COMMIT: a quarter of the round trips."""
    autocommit_single_statement()
    parameters = {**record.attempt, **record.move_on}
    if record.counts:  # a test message leaves the streak alone
        statement = statements.record_success_ending_streak()
        parameters.update(streak_webhook_id=record.attempt["attempt_webhook_id"],
                          success_at=record.attempt["attempt_started_at"])
    else:
        statement = statements.record_attempt_in_one_statement()
    db.session.connection().execute(statement, parameters)
    db.session.commit()


def _write(records: list[AttemptRecord], release_ids: list[int], fail_ids: list[int], fail_reason: str,
           released_enqueued_at: datetime | None, expired_secret_webhook_id: int | None) -> list[int]:
    if (len(records) == 1 and records[0].result.succeeded and not (release_ids or fail_ids)
            and expired_secret_webhook_id is None and dialect_name() == "postgresql"):
        _write_one_success(records[0])
        return []
    connection = db.session.connection()
    if records:
        if dialect_name() == "postgresql":
            connection.execute(statements.record_attempt_in_one_statement(),
                               [{**record.attempt, **record.move_on} for record in records])
        else:
            connection.execute(statements.insert_attempt("sqlite"), [record.attempt for record in records])
            connection.execute(statements.move_on(), [record.move_on for record in records])
    notifications = []
    for record in records:
        if record.disables_webhook:
            notifications.append(disable_webhook_after_failures(
                record.attempt["attempt_webhook_id"], record.attempt["attempt_message_id"],
                record.move_on["move_on_attempts_made"], record.result))
    # After disabling: a webhook disabled by this batch is warned no more.
    notifications += update_streaks([record.streak_attempt() for record in records if record.counts], utcnow())
    if release_ids:
        connection.execute(statements.release_claims(),
                           {"release_ids": release_ids, "release_enqueued_at": released_enqueued_at})
    if fail_ids:
        connection.execute(statements.fail_unsent(),
                           {"fail_ids": fail_ids, "fail_reason": fail_reason, "fail_updated_at": utcnow()})
    if expired_secret_webhook_id is not None:
        # Read past its overlap: the replaced secret leaves the database now.
        connection.execute(statements.forget_expired_secret(),
                           {"expired_webhook_id": expired_secret_webhook_id, "expired_now": utcnow()})
    owed_ids = store_notifications([notification for notification in notifications if notification is not None])
    db.session.commit()
    return owed_ids


def record_batch(records: list[AttemptRecord], release_ids: Sequence[int] = (), fail_ids: Sequence[int] = (),
                 fail_reason: str = "", requeued: bool = False, expired_secret_webhook_id: int | None = None) -> None:
    """Store attempts, give back unsent claims and fail unsendable messages in one transaction, and commit.

    `requeued`: a queue entry for the released messages is already on its way (the sweeper can wait).
    `expired_secret_webhook_id`: a webhook whose replaced secret was read past its overlap (removed here).

    The endpoint already answered these attempts: a database connection that drops now must not leave them
    unrecorded (their messages would be sent again when the claims expire). Writing again is a no-op for
    what was already stored, so the write is retried on a fresh connection, a few times within the claim's
    margin.
    """
    for number in range(1, RECORD_TRIES + 1):
        try:
            owed_ids = _write(records, list(release_ids), list(fail_ids), fail_reason,
                              utcnow() if requeued else None, expired_secret_webhook_id)
            break
        # IntegrityError: the webhook was deleted between the attempt's look-up of it and the commit.
        except (exc.OperationalError, exc.InterfaceError, exc.IntegrityError) as error:
            db.session.rollback()
            if number == RECORD_TRIES:
                raise
            pause = RECORD_BACKOFF_SECONDS[min(number, len(RECORD_BACKOFF_SECONDS)) - 1]
            logger.warning("recording %d attempt(s) failed (%s: %s); trying again in %g s on a new connection",
                           len(records), type(error.orig).__name__, str(error.orig).strip()[:200], pause)
            time.sleep(pause)
    # Only after the commit: the emails never wait on, or hold up, the delivery's transaction.
    enqueue_notifications(owed_ids)
