"""Events in through the API, messages out through a real worker to a real HTTPS receiver."""

import base64
import itertools

from conftest import wait_for
from sqlalchemy import select
from standardwebhooks import Webhook as StandardWebhook

from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus
from webhooks_app.secrets_vault import whsec_form
from webhooks_app.services.webhooks import WebhookFields, create_webhook


def add_webhook(app, url: str, events=("asset.create",), enabled=True) -> tuple[int, str]:
    with app.app_context():
        webhook, secret = create_webhook(WebhookFields("Receiver", url, tuple(events), enabled))
        db.session.commit()
        return webhook.id, secret


def message_statuses(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Message.status).order_by(Message.id)))


def test_an_event_is_delivered_in_the_documented_shape_and_verifies(app, client, api_token, receiver,
                                                                     delivery_processes):
    """An asset.create event reaches the endpoint as the document's JSON, signed the Standard Webhooks way."""
    webhook_id, secret = add_webhook(app, receiver.url("/ok"))
    response = client.post("/api/v1/events", json={"type": "asset.create", "assetId": 101, "userId": 1},
                           headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["messages"] == 1

    (delivery,) = receiver.wait_for_count(1)
    headers = {key.lower(): value for key, value in delivery.headers.items()}
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["user-agent"].startswith("Webhooks/")
    body = delivery.json()
    assert list(body) == ["event", "token", "messageTime", "messageId", "subscriptionId"]
    assert body["event"] == {"assetId": 101, "systemEventType": "ASSET_CREATE", "eventId": answer["eventId"],
                             "eventTime": body["event"]["eventTime"], "userId": 1}
    assert list(body["event"]) == ["assetId", "systemEventType", "eventId", "eventTime", "userId"]
    assert body["token"] == secret and body["subscriptionId"] == webhook_id
    assert headers["webhook-id"] == body["messageId"]
    assert headers["webhook-timestamp"] == str(body["messageTime"])

    verified = StandardWebhook(whsec_form(secret)).verify(delivery.body, headers)
    assert verified == body
    assert whsec_form(secret) == "whsec_" + base64.b64encode(secret.encode()).decode()

    wait_for(lambda: message_statuses(app) == [MessageStatus.SENT], message="the message to be Sent")


def test_disabled_and_unsubscribed_webhooks_get_no_message(app, client, api_token, receiver, delivery_processes):
    """Only enabled webhooks subscribed to the event's type get a message."""
    add_webhook(app, receiver.url("/ok/enabled"), events=("folder.create",))
    add_webhook(app, receiver.url("/ok/disabled"), events=("folder.create",), enabled=False)
    add_webhook(app, receiver.url("/ok/other"), events=("asset.create",))
    response = client.post("/api/v1/events", json={"type": "folder.create", "folderId": 7, "userId": 1},
                           headers={"Authorization": f"Bearer {api_token}"})
    assert response.get_json()["messages"] == 1
    (delivery,) = receiver.wait_for_count(1)
    assert delivery.path == "/ok/enabled"
    wait_for(lambda: message_statuses(app) == [MessageStatus.SENT], message="the message to be Sent")
    assert len(receiver.received) == 1


def test_a_burst_of_events_reaches_every_webhook_once(app, client, api_token, receiver, delivery_processes):
    """Thirty events to two webhooks, sent by the worker in batches: sixty deliveries, none twice, all Sent."""
    add_webhook(app, receiver.url("/ok/first"))
    add_webhook(app, receiver.url("/ok/second"))
    for asset_id in range(1, 31):
        response = client.post("/api/v1/events", json={"type": "asset.create", "assetId": asset_id, "userId": 1},
                               headers={"Authorization": f"Bearer {api_token}"})
        assert response.status_code == 202
    wait_for(lambda: message_statuses(app) == [MessageStatus.SENT] * 60, message="all sixty messages to be Sent")
    received = receiver.received
    assert len(received) == 60 and len({delivery.json()["messageId"] for delivery in received}) == 60
    for path in ("/ok/first", "/ok/second"):
        assets = sorted(delivery.json()["event"]["assetId"] for delivery in received if delivery.path == path)
        assert assets == list(range(1, 31))


def test_a_long_backlog_at_a_slow_endpoint_is_sent_by_several_batches_at_once(app, receiver, fresh_redis,
                                                                              certificates):
    """One request for 120 owed messages: each full batch asks for the next, so sends to the endpoint overlap."""
    from conftest import DeliveryProcesses, delivery_environment

    from webhooks_app.services.dispatch import request_batches
    from webhooks_app.services.intake import accept_event

    webhook_id, _ = add_webhook(app, receiver.url("/slow/0.05"))
    with app.app_context():
        for asset_id in range(1, 121):
            accept_event({"type": "asset.create", "assetId": asset_id, "userId": 1})
        db.session.commit()
        assert request_batches([webhook_id])
    # No sweeper re-requests during the test: any overlap comes from the batches themselves.
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates,
                                                       WEBHOOKS_REQUEUE_AFTER_SECONDS="600"))
    try:
        wait_for(lambda: message_statuses(app) == [MessageStatus.SENT] * 120, timeout=60,
                 message="all 120 messages to be Sent")
    finally:
        processes.stop()
    # The receiver holds each request at least 0.05 s: a request arriving sooner after another overlaps it.
    arrivals = sorted(delivery.at for delivery in receiver.received)
    overlapping = sum(later - earlier < 0.05 for earlier, later in itertools.pairwise(arrivals))
    assert len(arrivals) == 120 and overlapping >= 10
