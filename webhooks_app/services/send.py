"""Send: the claimed messages of one webhook, signed and POSTed in order on one kept-alive connection.

The third step of the delivery path (intake → dispatch → send → record). Whatever a send raises becomes a
recorded failed attempt; what a batch claimed and did not send goes back for the next batch.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app

from .. import PRODUCT_NAME, PRODUCT_VERSION
from ..models import utcnow
from ..secrets_vault import SecretUnreadable, whsec_form
from .delivery_statements import ClaimedMessage
from .record import AttemptRecord, Outcome, attempt_record, record_batch
from .secret_rotation import signing_secrets
from .signing import delivery_headers, message_body
from .transport import SendResult, post_json

logger = logging.getLogger(__name__)

USER_AGENT = f"{PRODUCT_NAME}/{PRODUCT_VERSION} (+webhook delivery)"
# A batch stops starting sends after this long, so a slow endpoint's batch holds its claims (and a
# worker thread) for at most this plus one send's deadline; what is left goes back for the next batch.
BATCH_SECONDS = 1.0


@dataclass(frozen=True)
class PreparedSend:
    """Everything one attempt needs, copied out of the database so the send touches no row."""

    message_id: int
    url: str
    body: bytes
    headers: dict[str, str]
    redact: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class BatchOutcome:
    """What one delivery call did: each message's outcome, whether to come back, and when retries are due."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)
    deferred: bool = False
    more: bool = False  # messages may still be due for the webhook
    retries_due: tuple[datetime, ...] = ()  # the earliest due time per ladder step scheduled

    def count(self, outcome: Outcome) -> int:
        return sum(value == outcome for value in self.outcomes.values())

    @property
    def sent(self) -> int:
        return self.count(Outcome.SENT)

    @property
    def failed(self) -> int:
        return self.count(Outcome.FAILED)


def prepare_send(claimed: ClaimedMessage) -> PreparedSend:
    """Build the body and signed headers of the next attempt; messageTime is this send's time.

    The body's token is the current secret; while a replaced secret overlaps, the signature header also
    carries its signature.
    """
    secrets = signing_secrets(claimed.secret_encrypted, claimed.previous_secret_at(utcnow()))
    message_time = int(time.time())
    body = message_body(claimed.payload, secrets[0], message_time, claimed.message_uuid, claimed.webhook_id)
    headers = delivery_headers(secrets, claimed.message_uuid, message_time, body, USER_AGENT)
    redact = tuple(form for secret in secrets for form in (secret, whsec_form(secret)))
    return PreparedSend(claimed.id, claimed.url, body, headers, redact=redact)


def send_prepared(prepared: PreparedSend) -> SendResult:
    """POST a prepared message with the configured deadline, guard and certificate authorities."""
    config = current_app.config
    return post_json(
        prepared.url, prepared.body, prepared.headers,
        timeout=config["WEBHOOKS_TIMEOUT_SECONDS"],
        allow_private=config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"],
        verify=config["WEBHOOKS_CA_BUNDLE"] or True,
        redact=prepared.redact,
    )


def attempt(claimed: ClaimedMessage) -> AttemptRecord:
    """Make one attempt; whatever it raises (but an unreadable secret) becomes a recorded failed attempt."""
    started_at = utcnow()
    started = time.monotonic()
    prepared = None
    try:
        prepared = prepare_send(claimed)
        result = send_prepared(prepared)
    except SecretUnreadable:
        raise
    except Exception as error:  # noqa: BLE001 - recorded as a failed attempt and logged with its traceback
        logger.exception("unexpected error sending message %s of webhook %s", claimed.id, claimed.webhook_id)
        result = SendResult(False, int((time.monotonic() - started) * 1000), error_kind="unexpected",
                            error_detail=f"an unexpected error in this service while sending ({type(error).__name__})")
    return attempt_record(claimed, claimed.attempts_made + 1, started_at, result,
                          request_headers=prepared.headers if prepared else None)


DISABLED_REASON = "Not sent: its webhook is disabled when the attempt came due."


def unsendable_reason(claimed: ClaimedMessage) -> str | None:
    """Why a claimed message may not be sent at all (its webhook deleted, or disabled unless it is a test)."""
    if claimed.url is not None and (claimed.enabled or claimed.is_test):
        return None
    return "Not sent: its webhook was deleted when the attempt came due." if claimed.url is None else DISABLED_REASON


def send_claimed(claimed: list[ClaimedMessage], full: bool) -> BatchOutcome:
    """Send claimed messages of one webhook in order for up to BATCH_SECONDS, then record it all and commit."""
    reason = unsendable_reason(claimed[0])
    if reason:
        record_batch([], fail_ids=[message.id for message in claimed], fail_reason=reason)
        return BatchOutcome({message.id: Outcome.FAILED for message in claimed}, more=full)
    records: list[AttemptRecord] = []
    unsent: list[ClaimedMessage] = []
    fail_reason = ""
    stop_after = time.monotonic() + BATCH_SECONDS
    for index, message in enumerate(claimed):
        if records and time.monotonic() > stop_after:
            unsent = claimed[index:]
            break
        try:
            records.append(attempt(message))
        except SecretUnreadable as error:
            unsent, fail_reason = claimed[index:], f"Not sent: {error}."
            break
        if records[-1].disables_webhook:
            # The webhook is disabled from here on (410 Gone, or a message out of retries): the rest of the
            # batch ends as a disabled webhook's messages do.
            unsent, fail_reason = claimed[index + 1:], DISABLED_REASON
            break
    unsent_ids = [message.id for message in unsent]
    expired_secret = claimed[0].webhook_id if claimed[0].previous_secret_expired(utcnow()) else None
    record_batch(records, release_ids=[] if fail_reason else unsent_ids, fail_ids=unsent_ids if fail_reason else [],
                 fail_reason=fail_reason, expired_secret_webhook_id=expired_secret)
    outcomes = {record.attempt["attempt_message_id"]: record.outcome for record in records}
    outcomes.update({message_id: Outcome.FAILED if fail_reason else Outcome.DEFERRED for message_id in unsent_ids})
    # A rung's retries fall due over the few seconds its sends took: a batch when the first is due and one when
    # the last is, so none waits for the sweeper (a minute late).
    retries: dict[int, list[datetime]] = {}
    for record in records:
        if record.next_attempt_at is not None:
            retries.setdefault(record.attempt["attempt_number"], []).append(record.next_attempt_at)
    due_times = {moment for rung in retries.values() for moment in (min(rung), max(rung))}
    return BatchOutcome(outcomes, more=full or bool(unsent_ids and not fail_reason),
                        retries_due=tuple(sorted(due_times)))
