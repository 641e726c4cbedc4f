"""The Test button: one WEBHOOK_TEST message sent at once, logged, never counted toward disabling."""

import time
import uuid

from ..extensions import db
from ..models import Event, Message
from .delivery import DeliveryOutcome, deliver_message
from .intake import create_messages

TEST_EVENT_TYPE = "webhook.test"


def create_test_message(webhook_id: int, user_id: int) -> Message:
    """Store a test event and its one Queued message for this webhook; callers commit."""
    event_uuid = str(uuid.uuid4())
    payload = {"systemEventType": "WEBHOOK_TEST", "eventId": event_uuid, "eventTime": int(time.time()),
               "userId": user_id}
    event = Event(event_uuid=event_uuid, event_type=TEST_EVENT_TYPE, payload=payload)
    db.session.add(event)
    (message,) = create_messages(event, [webhook_id], is_test=True)
    db.session.flush()
    return message


def send_test_message(message_id: int) -> DeliveryOutcome:
    """Send a committed test message now, in this process; commits its outcome."""
    return deliver_message(message_id)
