"""Deliver: claim due messages, send them in order on one connection, record what happened.

A webhook's backlog goes out in batches (deliver_backlog); a single message (a test, a deleted webhook's
leftover) is a batch of one through the same code (deliver_message).
"""

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app

from .. import PRODUCT_NAME, PRODUCT_VERSION
from ..database import retry_once_on_disconnect
from ..extensions import db
from ..models import utcnow
from ..secrets_vault import SecretUnreadable, decrypt_secret, whsec_form
from .attempts import AttemptRecord, Outcome, attempt_record, record_batch
from .claims import (
    BATCH_SECONDS,
    BATCH_SIZE,
    ClaimedMessage,
    claim_backlog,
    claim_message,
    release_claims,
    webhook_url,
)
from .endpoint_slots import BUSY_NOT_SLOW_SECONDS, WAIT_SECONDS, SendSlots, slot_keys
from .signing import delivery_headers, message_body
from .transport import SendResult, post_json

logger = logging.getLogger(__name__)

USER_AGENT = f"{PRODUCT_NAME}/{PRODUCT_VERSION} (+webhook delivery)"
# A batch waits this long for a busy webhook's slot while the batches there are young, instead of
# stepping aside: the others finish within BATCH_SECONDS, and stepping aside costs a queue round.
SLOT_WAIT_SECONDS = 0.5


@dataclass(frozen=True)
class PreparedSend:
    """Everything one attempt needs, copied out of the database so the send touches no row."""

    message_id: int
    message_uuid: str
    url: str
    body: bytes
    headers: dict[str, str]
    attempt_number: int
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
    """Build the body and signed headers of the next attempt; messageTime is this send's time."""
    secret = decrypt_secret(claimed.secret_encrypted)
    message_time = int(time.time())
    body = message_body(claimed.payload, secret, message_time, claimed.message_uuid, claimed.webhook_id)
    headers = delivery_headers(secret, claimed.message_uuid, message_time, body, USER_AGENT)
    return PreparedSend(claimed.id, claimed.message_uuid, claimed.url, body, headers, claimed.attempts_made + 1,
                        redact=(secret, whsec_form(secret)))


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
    try:
        result = send_prepared(prepare_send(claimed))
    except SecretUnreadable:
        raise
    except Exception as error:  # noqa: BLE001 - recorded as a failed attempt and logged with its traceback
        logger.exception("unexpected error sending message %s of webhook %s", claimed.id, claimed.webhook_id)
        result = SendResult(False, int((time.monotonic() - started) * 1000), error_kind="unexpected",
                            error_detail=f"an unexpected error in this service while sending ({type(error).__name__})")
    return attempt_record(claimed, claimed.attempts_made + 1, started_at, result)


def unsendable_reason(claimed: ClaimedMessage) -> str | None:
    """Why a claimed message may not be sent at all (its webhook deleted or disabled), or None."""
    if claimed.url is not None and claimed.enabled:
        return None
    why = "its webhook was deleted" if claimed.url is None else "its webhook is disabled"
    return f"Not sent: {why} when the attempt came due."


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
    unsent_ids = [message.id for message in unsent]
    record_batch(records, release_ids=[] if fail_reason else unsent_ids, fail_ids=unsent_ids if fail_reason else [],
                 fail_reason=fail_reason)
    outcomes = {record.attempt["attempt_message_id"]: record.outcome for record in records}
    outcomes.update({message_id: Outcome.FAILED if fail_reason else Outcome.DEFERRED for message_id in unsent_ids})
    retries: dict[int, datetime] = {}
    for record in records:
        if record.next_attempt_at is not None:
            number = record.attempt["attempt_number"]
            retries[number] = min(retries.get(number, record.next_attempt_at), record.next_attempt_at)
    return BatchOutcome(outcomes, more=full or bool(unsent_ids and not fail_reason),
                        retries_due=tuple(sorted(retries.values())))


def _with_slot(slots: SendSlots | None, webhook_id: int, url: str, wait_seconds: float, young_seconds: float,
               work: Callable[[], BatchOutcome], on_refused: Callable[[], BatchOutcome]) -> BatchOutcome:
    if slots is None:
        return work()
    keys, holder = slot_keys(webhook_id, url), str(uuid.uuid4())
    if not slots.acquire(keys, holder, wait_seconds=wait_seconds, young_seconds=young_seconds):
        return on_refused()
    try:
        return work()
    finally:
        slots.release(keys, holder)


def deliver_backlog(webhook_id: int, slots: SendSlots | None = None, limit: int = BATCH_SIZE,
                    on_full_batch: Callable[[], object] | None = None) -> BatchOutcome:
    """Send a webhook's due messages in order, holding one of its send slots; commits as it goes.

    The slot is taken before anything is claimed: a busy webhook defers the batch at the cost of one read,
    not of claiming and releasing its messages. `on_full_batch` runs after a claim that took `limit`
    messages, before the sends.
    """
    url = retry_once_on_disconnect(lambda: webhook_url(webhook_id), "reading a webhook's URL") if slots else None

    def claim_and_send() -> BatchOutcome:
        claimed = retry_once_on_disconnect(lambda: claim_backlog(webhook_id, limit), "claiming a batch")
        db.session.commit()  # never hold a transaction (or SQLite's write lock) across the network calls
        if not claimed:
            return BatchOutcome()
        full = len(claimed) == limit
        if on_full_batch and full:
            on_full_batch()
        return send_claimed(claimed, full)

    if url is None:
        return claim_and_send()
    return _with_slot(slots, webhook_id, url, SLOT_WAIT_SECONDS, BATCH_SECONDS + BUSY_NOT_SLOW_SECONDS,
                      claim_and_send, lambda: BatchOutcome(deferred=True, more=True))


def deliver_message(message_id: int, slots: SendSlots | None = None) -> Outcome:
    """Make one message's next attempt if it is due and nobody else holds it: a batch of one; commits."""
    claimed = retry_once_on_disconnect(lambda: claim_message(message_id), "claiming a message")
    db.session.commit()  # never hold a transaction (or SQLite's write lock) across the network call
    if claimed is None:
        return Outcome.NOT_DUE
    if unsendable_reason(claimed) or slots is None:
        return send_claimed([claimed], full=False).outcomes[claimed.id]

    def refused() -> BatchOutcome:
        # The caller puts it back on the queue with a delay: the sweeper need not.
        release_claims([claimed.id], requeued=True)
        db.session.commit()
        return BatchOutcome({claimed.id: Outcome.DEFERRED}, deferred=True)

    outcome = _with_slot(slots, claimed.webhook_id, claimed.url, WAIT_SECONDS, BUSY_NOT_SLOW_SECONDS,
                         lambda: send_claimed([claimed], full=False), refused)
    return outcome.outcomes[claimed.id]
