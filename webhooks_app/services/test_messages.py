"""The Test button: one WEBHOOK_TEST message sent at once, logged, never counted toward disabling."""

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from ..extensions import db
from ..models import Attempt
from .attempts import Outcome
from .delivery import deliver_message
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


@dataclass(frozen=True)
class TestSend:
    """Where the test message ended, and its attempt (None when it was not sent)."""

    action: Outcome
    result: Attempt | None


def send_test_message(message_id: int) -> TestSend:
    """Send a committed test message now, in this process; commits its outcome."""
    outcome = deliver_message(message_id)
    return TestSend(outcome, db.session.scalar(select(Attempt).where(Attempt.message_id == message_id)))
