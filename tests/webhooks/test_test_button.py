"""The Test button: a WEBHOOK_TEST message queued for the real worker, the web request answering at once, and
the dialog polling the message's row until the endpoint's answer (from its Attempt row) is shown."""

import re
import time

from conftest import DeliveryProcesses, delivery_environment, wait_for
from markup import is_full_page, named, parse, root, select_all, select_one, text_of
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Message, MessageStatus, Webhook

BASE = "/system/integrations/api/webhooks"
HTMX = {"HX-Request": "true"}


def poll_url(body) -> str:
    """The result URL the pending answer polls every 500 ms (and links to without JavaScript)."""
    poller = select_one(body, "[data-test-message]")
    assert poller["hx-trigger"] == "every 500ms"
    return poller["hx-get"]


def create(admin_client, url: str) -> tuple[int, str]:
    response = admin_client.post(
        f"{BASE}/new", headers=HTMX,
        data={"name": "Receiver", "url": url, "events": ["asset.create"], "enabled": "y",
              "csrf_token": admin_client.csrf_token},
    )
    body = parse(response)
    webhook_id = int(re.fullmatch(rf"{BASE}/(\d+)/test", select_one(body, "dialog form[action$='/test']")["action"])[1])
    return webhook_id, body


def press_test(admin_client, webhook_id: int, in_secret_dialog: bool = True):
    """Press Test as the page does (the secret dialog targets its result area, the row menu the dialog host)."""
    target = f"test-result-{webhook_id}" if in_secret_dialog else "dialog-host"
    response = admin_client.post(f"{BASE}/{webhook_id}/test", data={"csrf_token": admin_client.csrf_token},
                                 headers={**HTMX, "HX-Target": target})
    assert response.status_code == 200, response.get_data(as_text=True)
    return parse(response)


def poll_until_answered(admin_client, body, timeout: float = 30):
    """Poll the result URL the answer carries, as htmx does every 500 ms, until it is more than 204."""
    url = poll_url(body)

    def answered():
        response = admin_client.get(url, headers={**HTMX, "HX-Target": f"test-result-{url.split('/')[-3]}"})
        return parse(response) if response.status_code != 204 else None

    return wait_for(answered, timeout=timeout, message="the test message's answer")


def only_message(app) -> Message:
    with app.app_context():
        message = db.session.scalars(select(Message)).one()
        db.session.expunge_all()
        return message


def test_create_dialog_offers_test_and_done(admin_client, receiver):
    """After Create, the secret dialog has a Test button next to Done."""
    _, body = create(admin_client, receiver.url("/ok"))
    dialog = select_one(body, "dialog#webhook-secret-dialog")
    assert named(dialog, "button", "Test")["type"] == "submit" and named(dialog, "a", "Done")


def test_test_is_sent_by_the_worker_and_its_answer_shown(app, admin_client, receiver, delivery_processes):
    """Test queues a WEBHOOK_TEST message and answers at once with a poller; the worker sends it; the poll then
    shows the endpoint's status code and time; the message is logged Sent."""
    webhook_id, _ = create(admin_client, receiver.url("/ok"))
    body = press_test(admin_client, webhook_id)
    assert root(body)["id"] == f"test-result-{webhook_id}" and "Sending…" in text_of(body)
    result = poll_until_answered(admin_client, body)
    assert re.search(r"answered HTTP 204 in \d+ ms", text_of(result))
    assert select_all(result, "[hx-get]") == []  # the result replaces the poller: polling stops
    (delivery,) = receiver.received
    payload = delivery.json()
    assert payload["event"]["systemEventType"] == "WEBHOOK_TEST"
    assert payload["subscriptionId"] == webhook_id
    message = only_message(app)
    assert (message.event_type, message.is_test, message.status) == ("webhook.test", True, MessageStatus.SENT)


def test_failed_test_shows_the_error_escaped_and_does_not_count_toward_disabling(app, admin_client, receiver,
                                                                                   delivery_processes):
    """From the row menu's Test dialog: a 500 answer (with markup) is shown as such, escaped, from the Attempt
    row; the message fails once without retries and the webhook stays enabled."""
    webhook_id, _ = create(admin_client, receiver.url("/hostile"))
    body = press_test(admin_client, webhook_id, in_secret_dialog=False)
    assert (root(body).name, root(body)["id"]) == ("dialog", "webhook-test-dialog")
    result = poll_until_answered(admin_client, body)
    assert "answered HTTP 500" in text_of(result) and "does not count toward disabling" in text_of(result)
    assert select_one(result, "pre.response-excerpt").get_text().startswith("<script>alert('owned')</script>y")
    assert select_all(result, "script") == []
    with app.app_context():
        message = db.session.scalars(select(Message)).one()
        assert message.status == MessageStatus.FAILED and message.next_attempt_at is None
        assert db.session.scalar(select(db.func.count()).select_from(Attempt)) == 1
        assert db.session.get(Webhook, webhook_id).enabled is True


def test_a_hanging_endpoint_does_not_hold_the_web_request(app, admin_client, silent_server, delivery_processes):
    """Against an endpoint that never answers, Test answers at once (the web thread does not wait for the 2 s
    deadline); the timeout then arrives through the poll."""
    webhook_id, _ = create(admin_client, silent_server.url("/hook"))
    started = time.monotonic()
    body = press_test(admin_client, webhook_id)
    assert time.monotonic() - started < 1.0
    assert only_message(app).status == MessageStatus.QUEUED
    result = text_of(poll_until_answered(admin_client, body))
    assert "Not delivered." in result and "Timed out" in result


def test_while_redis_is_down_the_test_waits_in_the_queue_and_is_sent_when_it_returns(app, admin_client, receiver,
                                                                                    fresh_redis, certificates):
    """With Redis stopped, Test says the message waits in the queue; once Redis is back the scheduler's sweeper
    sends it and the same poll shows the answer."""
    webhook_id, _ = create(admin_client, receiver.url("/ok"))
    fresh_redis.stop()
    body = press_test(admin_client, webhook_id)
    assert "Redis unavailable." in text_of(body) and "waits in the queue" in text_of(body)
    assert only_message(app).status == MessageStatus.QUEUED
    assert admin_client.get(poll_url(body), headers=HTMX).status_code == 204
    fresh_redis.start()
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates))
    try:
        result = poll_until_answered(admin_client, body, timeout=45)
    finally:
        processes.stop()
    assert re.search(r"answered HTTP 204 in \d+ ms", text_of(result))
    assert len(receiver.received) == 1


def test_the_result_page_works_without_javascript(app, admin_client, receiver, delivery_processes):
    """Without HTMX the Test form answers a page, and the result URL is a page too (pending or answered)."""
    webhook_id, _ = create(admin_client, receiver.url("/ok"))
    page = admin_client.post(f"{BASE}/{webhook_id}/test", data={"csrf_token": admin_client.csrf_token})
    assert page.status_code == 200 and is_full_page(page)
    url = poll_url(page)
    assert named(page, "a", "Check for the answer")["href"] == url
    answered = wait_for(lambda: "answered HTTP 204" in text_of(admin_client.get(url)), timeout=30,
                        message="the result page to show the answer")
    assert answered


def test_the_result_of_another_webhooks_message_is_404(app, admin_client, receiver):
    """A result URL naming a message of another webhook, or no test message, answers 404."""
    first, _ = create(admin_client, receiver.url("/ok"))
    second, _ = create(admin_client, receiver.url("/ok"))
    body = press_test(admin_client, first)
    message_id = poll_url(body).rsplit("/", 1)[1]
    assert admin_client.get(f"{BASE}/{second}/test/{message_id}", headers=HTMX).status_code == 404
    assert admin_client.get(f"{BASE}/{first}/test/2147483647", headers=HTMX).status_code == 404


def test_test_needs_csrf(app, admin_client, receiver):
    """Test without the CSRF token queues nothing."""
    webhook_id, _ = create(admin_client, receiver.url("/ok"))
    response = admin_client.post(f"{BASE}/{webhook_id}/test", headers=HTMX)
    assert response.status_code == 400 and receiver.received == []
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Message)) == 0
