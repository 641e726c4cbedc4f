"""The Test button: one WEBHOOK_TEST message sent at once, logged, never counted toward disabling."""

import time
import uuid

from .delivery import DeliveryOutcome, deliver_message
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


def send_test_message(message_id: int) -> DeliveryOutcome:
    """Send a committed test message now, in this process; commits its outcome."""
    return deliver_message(message_id)
