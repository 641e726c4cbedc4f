"""The retry ladder, automatic disabling, and nothing lost when Redis or a worker fails, with real processes."""

from conftest import wait_for
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Message, MessageStatus, Webhook
from webhooks_app.services.webhooks import WebhookFields, create_webhook, update_webhook


def add_webhook(app, url: str) -> int:
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Endpoint", url, ("asset.create",), True))
        db.session.commit()
        return webhook.id


def post_events(client, api_token, count: int) -> list[str]:
    event_ids = []
    for asset_id in range(1, count + 1):
        response = client.post("/api/v1/events", json={"type": "asset.create", "assetId": asset_id, "userId": 1},
                               headers={"Authorization": f"Bearer {api_token}"})
        assert response.status_code == 202, response.get_data(as_text=True)
        event_ids.append(response.get_json()["eventId"])
    return event_ids


def statuses(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Message.status).order_by(Message.id)))


def all_sent(app, count: int):
    return lambda: statuses(app) == [MessageStatus.SENT] * count


def test_default_ladder_is_the_documents():
    """Without configuration the waits before attempts 2..6 are 5 min, 30 min, 30 min, 12 h and 24 h."""
    from webhooks_app.config import DEFAULT_RETRY_DELAYS, settings_from_environment

    assert DEFAULT_RETRY_DELAYS == (300, 1800, 1800, 43200, 86400)
    assert settings_from_environment({"SECRET_KEY": "x"})["WEBHOOKS_RETRY_DELAYS"] == DEFAULT_RETRY_DELAYS


def test_full_ladder_ends_failed_and_disables_the_webhook(app, admin_client, api_token, receiver,
                                                          delivery_processes):
    """Six failed attempts (one per ladder step) end the message Failed and disable the webhook: red toggle, alert."""
    client = admin_client
    webhook_id = add_webhook(app, receiver.url("/status/500"))
    post_events(client, api_token, 1)
    wait_for(lambda: statuses(app) == [MessageStatus.FAILED], timeout=60, message="the message to fail")
    deliveries = receiver.wait_for_count(6)
    assert len({d.json()["messageId"] for d in deliveries}) == 1
    assert len({d.headers["webhook-signature"] for d in deliveries}) >= 1
    with app.app_context():
        attempts = list(db.session.scalars(select(Attempt).order_by(Attempt.number)))
        assert [a.number for a in attempts] == [1, 2, 3, 4, 5, 6]
        gaps = [(b.started_at - a.started_at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
        assert all(gap >= 1 for gap in gaps), gaps
        webhook = db.session.get(Webhook, webhook_id)
        assert webhook.enabled is False and webhook.disabled_at is not None
        assert "HTTP 500" in webhook.disabled_reason and "Likely cause" in webhook.disabled_reason
    page = client.get("/system/integrations/api/webhooks").get_data(as_text=True)
    assert 'aria-checked="false"' in page and "switch off" in page and "Disabled automatically" in page
    edit = client.get(f"/system/integrations/api/webhooks/{webhook_id}/edit").get_data(as_text=True)
    assert "This webhook was disabled automatically" in edit and "answered with an error" in edit
    assert len(receiver.received) == 6


def test_failed_message_is_never_sent_again_even_after_re_enabling(app, client, api_token, receiver,
                                                                   delivery_processes):
    """After Failed and auto-disable, re-enabling the webhook resends nothing."""
    webhook_id = add_webhook(app, receiver.url("/status/503"))
    post_events(client, api_token, 1)
    wait_for(lambda: statuses(app) == [MessageStatus.FAILED], timeout=60, message="the message to fail")
    with app.app_context():
        webhook = db.session.get(Webhook, webhook_id)
        update_webhook(webhook_id, WebhookFields(webhook.name, receiver.url("/ok"), ("asset.create",), True))
        db.session.commit()
        from webhooks_app.services.dispatch import requeue_due_messages

        assert requeue_due_messages() == 0
    assert [d.path for d in receiver.received] == ["/status/503"] * 6


def test_refused_endpoint_is_disabled_with_the_documented_cause(app, client, api_token, delivery_processes):
    """An endpoint refusing connections is disabled with "not accepting connections" as the likely cause."""
    from conftest import free_port

    webhook_id = add_webhook(app, f"https://127.0.0.1:{free_port()}/hook")
    post_events(client, api_token, 1)
    wait_for(lambda: statuses(app) == [MessageStatus.FAILED], timeout=60, message="the message to fail")
    with app.app_context():
        assert "not accepting connections" in db.session.get(Webhook, webhook_id).disabled_reason


def test_redis_flushed_mid_run_loses_nothing(app, client, api_token, receiver, fresh_redis, certificates):
    """Messages whose queue entries vanish in a Redis flush are re-enqueued by the sweeper and sent."""
    from conftest import DeliveryProcesses, delivery_environment

    add_webhook(app, receiver.url("/ok"))
    post_events(client, api_token, 5)
    assert fresh_redis.client().llen("dramatiq:deliveries") == 1  # one batch asked for the webhook's five
    fresh_redis.client().flushall()
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates))
    try:
        wait_for(all_sent(app, 5), timeout=45, message="every message to be Sent")
    finally:
        processes.stop()
    assert len({d.json()["messageId"] for d in receiver.received}) == 5


def test_events_accepted_while_redis_is_down_are_sent_when_it_returns(app, client, api_token, receiver,
                                                                      fresh_redis, certificates):
    """With Redis stopped the intake still answers 202; once Redis is back every message is sent."""
    from conftest import DeliveryProcesses, delivery_environment

    add_webhook(app, receiver.url("/ok"))
    fresh_redis.stop()
    post_events(client, api_token, 3)
    assert statuses(app) == [MessageStatus.QUEUED] * 3
    fresh_redis.start()
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates))
    try:
        wait_for(all_sent(app, 3), timeout=45, message="every message to be Sent")
    finally:
        processes.stop()


def test_worker_killed_mid_send_leaves_the_message_to_another_worker(app, client, api_token, receiver,
                                                                     silent_server, delivery_processes):
    """A worker SIGKILLed during a send loses its claim at the lease's end; another worker delivers it."""
    webhook_id = add_webhook(app, silent_server.url("/hook"))
    post_events(client, api_token, 1)
    wait_for(lambda: silent_server.accepted >= 1, message="the worker to connect to the endpoint")
    delivery_processes.worker.kill()
    with app.app_context():
        message = db.session.scalars(select(Message)).one()
        assert message.claimed_until is not None and message.attempts_made == 0
        webhook = db.session.get(Webhook, webhook_id)
        update_webhook(webhook_id, WebhookFields(webhook.name, receiver.url("/ok"), ("asset.create",), True))
        db.session.commit()
    delivery_processes.restart_worker()
    wait_for(all_sent(app, 1), timeout=45, message="the message to be Sent by the new worker")
    (delivery,) = receiver.wait_for_count(1)
    with app.app_context():
        assert db.session.scalars(select(Message.message_uuid)).one() == delivery.json()["messageId"]


def test_sigterm_lets_in_flight_sends_finish(app, client, api_token, receiver, delivery_processes):
    """SIGTERM to every worker process at once (as Heroku does) lets a send in flight finish within 30 s."""
    add_webhook(app, receiver.url("/slow/1.5"))
    post_events(client, api_token, 1)
    receiver.wait_for_count(1)
    exit_code = delivery_processes.worker.stop(timeout=30)
    assert exit_code is not None, delivery_processes.logs()
    assert statuses(app) == [MessageStatus.SENT], delivery_processes.logs()


def test_a_retry_goes_out_when_due_not_when_the_sweeper_looks(app, client, api_token, receiver, fresh_redis,
                                                              certificates):
    """With the sweeper an hour away, a failed first attempt is retried a ladder step (1 s) later by a delayed entry."""
    from conftest import DeliveryProcesses, delivery_environment

    add_webhook(app, receiver.url("/fail-first"))
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates,
                                                       WEBHOOKS_SWEEP_INTERVAL_SECONDS="3600"))
    try:
        post_events(client, api_token, 1)
        first, second = receiver.wait_for_count(2, timeout=15)
        wait_for(all_sent(app, 1), message="the message to be Sent on its second attempt")
    finally:
        processes.stop()
    assert first.json()["messageId"] == second.json()["messageId"]
    assert second.at - first.at >= 1, "the retry came before its ladder step"


def test_every_retry_of_a_batch_goes_out_when_due_not_only_the_first(app, client, api_token, receiver, fresh_redis,
                                                                     certificates):
    """Three messages sent and failed in one batch fall due a few milliseconds apart: with the sweeper an hour away,
    each is still retried at its ladder step (the first one's delayed batch alone found only the first due)."""
    from conftest import DeliveryProcesses, delivery_environment

    add_webhook(app, receiver.url("/fail-first"))
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates,
                                                       WEBHOOKS_SWEEP_INTERVAL_SECONDS="3600"))
    try:
        batch = [{"type": "asset.create", "assetId": asset_id, "userId": 1} for asset_id in (1, 2, 3)]
        response = client.post("/api/v1/events", json=batch, headers={"Authorization": f"Bearer {api_token}"})
        assert response.status_code == 202, response.get_data(as_text=True)
        receiver.wait_for_count(6, timeout=20)
        wait_for(all_sent(app, 3), message="the three messages Sent on their second attempts")
    finally:
        processes.stop()


def test_a_host_name_no_resolver_can_read_ends_failed_and_disables_the_webhook(app, client, api_token,
                                                                               delivery_processes):
    """A stored URL with a 64-character label (saved before the rules) climbs the ladder to Failed, never stuck."""
    from sqlalchemy import update

    webhook_id = add_webhook(app, "https://hooks.example.com/x")
    with app.app_context():
        db.session.execute(update(Webhook).values(url="https://" + "a" * 64 + ".example/"))
        db.session.commit()
    post_events(client, api_token, 1)
    wait_for(lambda: statuses(app) == [MessageStatus.FAILED], timeout=60, message="the message to fail")
    with app.app_context():
        attempts = list(db.session.scalars(select(Attempt).order_by(Attempt.number)))
        assert [(a.number, a.error_kind) for a in attempts] == [(number, "dns") for number in range(1, 7)]
        webhook = db.session.get(Webhook, webhook_id)
        assert webhook.enabled is False and "invalid endpoint URL or a typo" in webhook.disabled_reason
