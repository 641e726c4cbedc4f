"""The Test button: one WEBHOOK_TEST message, sent by the worker like any other, logged, never counted toward
disabling. The page reads its outcome from the database (the message and its attempt)."""

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update

from ..extensions import db
from ..models import Attempt, Message, MessageStatus
from .intake import TEST_SCOPE, create_messages, store_event

TEST_EVENT_TYPE = "webhook.test"


def create_test_message(webhook_id: int, user_id: int) -> int:
    """Store a test event and its one Queued message for this webhook; returns the message id. Callers commit."""
    event_uuid = str(uuid.uuid4())
    payload = {"systemEventType": "WEBHOOK_TEST", "eventId": event_uuid, "eventTime": int(time.time()),
               "userId": user_id}
    event_id = store_event(event_uuid, TEST_EVENT_TYPE, payload, TEST_SCOPE)
    (message_id,) = create_messages(event_id, TEST_EVENT_TYPE, [webhook_id], is_test=True)
    return message_id


def await_sweeper(message_id: int) -> None:
    """Mark a test message that could not be put on the queue as never enqueued, so the scheduler's next sweep
    after Redis answers again sends it (instead of waiting WEBHOOKS_REQUEUE_AFTER_SECONDS). Callers commit."""
    db.session.execute(update(Message).where(Message.id == message_id, Message.is_test.is_(True))
                       .values(enqueued_at=None).execution_options(synchronize_session=False))


@dataclass(frozen=True)
class TestOutcome:
    """Where a test message stands: still waiting for the worker, or done with its one attempt (if any)."""

    message: Message
    attempt: Attempt | None

    @property
    def pending(self) -> bool:
        return self.attempt is None and self.message.status in MessageStatus.PENDING


def find_outcome(webhook_id: int, message_id: int) -> TestOutcome | None:
    """The test message `message_id` of this webhook and its latest attempt, or None if there is no such message."""
    message = db.session.scalar(select(Message).where(Message.id == message_id, Message.webhook_id == webhook_id,
                                                      Message.is_test.is_(True)))
    if message is None:
        return None
    attempt = db.session.scalar(select(Attempt).where(Attempt.message_id == message_id)
                                .order_by(Attempt.number.desc()).limit(1))
    return TestOutcome(message, attempt)
