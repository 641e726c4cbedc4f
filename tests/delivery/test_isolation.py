"""One endpoint that never answers must not hold up deliveries to healthy endpoints."""

from conftest import wait_for
from sqlalchemy import func, select

from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus
from webhooks_app.services.webhooks import WebhookFields, create_webhook


def test_a_hung_endpoint_does_not_starve_a_healthy_one(app, client, api_token, receiver, silent_server,
                                                       delivery_processes):
    """With ten sends owed to a hung endpoint, a healthy endpoint's message is sent before the hung ones are tried."""
    with app.app_context():
        create_webhook(WebhookFields("Hung", silent_server.url("/hook"), ("asset.delete",), True))
        healthy, _ = create_webhook(WebhookFields("Healthy", receiver.url("/ok"), ("asset.create",), True))
        db.session.commit()
        healthy_id = healthy.id
    headers = {"Authorization": f"Bearer {api_token}"}
    for asset_id in range(1, 11):
        client.post("/api/v1/events", json={"type": "asset.delete", "assetId": asset_id, "userId": 1}, headers=headers)
    wait_for(lambda: silent_server.accepted >= 2, message="the hung endpoint to hold two sends")
    client.post("/api/v1/events", json={"type": "asset.create", "assetId": 99, "userId": 1}, headers=headers)
    receiver.wait_for_count(1)

    with app.app_context():
        tried_hung = db.session.scalar(
            select(func.count()).select_from(Message).where(Message.webhook_id != healthy_id, Message.attempts_made > 0)
        )
    assert tried_hung < 10, "the healthy delivery waited for every hung send"
    assert silent_server.most_open <= 2, "more sends than the per-endpoint cap reached the hung endpoint at once"

    def healthy_sent():
        with app.app_context():
            status = db.session.scalar(select(Message.status).where(Message.webhook_id == healthy_id))
            return status == MessageStatus.SENT

    wait_for(healthy_sent, message="the healthy message to be marked Sent")


def test_deferrals_back_off_from_a_quarter_second_to_five_seconds():
    """A message deferred again and again waits longer each time, up to 5 s, so a hung backlog stays cheap."""
    from webhooks_app.services.dispatch import defer_delay_milliseconds

    first = [defer_delay_milliseconds(0) for _ in range(50)]
    assert all(200 <= delay <= 300 for delay in first) and len(set(first)) > 1  # jittered around 250 ms
    assert all(400 <= defer_delay_milliseconds(1) <= 600 for _ in range(50))
    assert all(4000 <= defer_delay_milliseconds(count) <= 6000 for count in (5, 6, 40, 1000) for _ in range(20))


def test_a_hanging_webhook_does_not_delay_another_on_the_same_host_and_port(app, client, api_token, receiver,
                                                                            fresh_redis, certificates):
    """Two webhooks on one https://host:port: while one path hangs with its sends, the other is delivered at once."""
    from conftest import DeliveryProcesses, delivery_environment

    with app.app_context():
        create_webhook(WebhookFields("Hanging", receiver.url("/hang/a"), ("asset.delete",), True))
        create_webhook(WebhookFields("Healthy", receiver.url("/ok/b"), ("asset.create",), True))
        db.session.commit()
    # A hanging send is cut after 10 s; the healthy message must not wait for that. 120 messages owed to the
    # hanging webhook make full batches, which ask for parallel ones: it takes all the slots it may (two).
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates, WEBHOOKS_TIMEOUT_SECONDS="10"))
    headers = {"Authorization": f"Bearer {api_token}"}
    try:
        for asset_id in range(1, 121):
            client.post("/api/v1/events", json={"type": "asset.delete", "assetId": asset_id, "userId": 1},
                        headers=headers)
        hanging = receiver.wait_for_count(2, "/hang", timeout=15)
        client.post("/api/v1/events", json={"type": "asset.create", "assetId": 99, "userId": 1}, headers=headers)
        receiver.wait_for_count(1, "/ok/b", timeout=5)
        assert len(receiver.wait_for_count(1, "/hang")) == len(hanging), "the webhook's cap of two was exceeded"
    finally:
        receiver.stop()
        processes.stop()
