"""Send again: a Sent or Failed message's details have a Send again button (a POST with CSRF, by htmx) that queues a
new message for the same event and webhook through the normal pipeline, delivered by the real worker to a real
HTTPS receiver; the original row is unchanged and the two link to each other."""

from conftest import wait_for
from factories import make_event, make_message
from markup import named, select_one, text_of
from sqlalchemy import func, select

from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus, Webhook
from webhooks_app.services.webhooks import WebhookFields, create_webhook

ACTIVITY = "/system/integrations/api/activity"
BASE = "/system/integrations/api/webhooks"
HTMX = {"HX-Request": "true"}


def history(app, url: str, status: str, enabled: bool = True) -> tuple[int, int, str]:
    """A webhook and one finished message of an event; returns (webhook id, message id, eventId)."""
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Receiver", url, ("asset.create",), enabled))
        event = make_event(asset_id=7)
        attempt = (True, 204, None, "") if status == MessageStatus.SENT else (False, 500, "http_status", "")
        message_id = make_message(webhook.id, status, event=event, attempts=[attempt])
        db.session.commit()
        return webhook.id, message_id, event.event_uuid


def details(admin_client, message_id: int):
    return admin_client.get(f"{ACTIVITY}/messages/{message_id}?columns=4", headers=HTMX)


def press_send_again(admin_client, message_id: int):
    form = select_one(details(admin_client, message_id), "form.send-again")
    assert form["hx-post"] == form["action"] == f"{ACTIVITY}/messages/{message_id}/send-again"
    assert form["hx-target"] == f"#message-details-{message_id}" and form["hx-swap"] == "outerHTML"
    return admin_client.post(form["action"], headers=HTMX, data={
        "csrf_token": admin_client.csrf_token, "columns": select_one(form, "input[name=columns]")["value"]})


def messages(app) -> list[Message]:
    with app.app_context():
        rows = list(db.session.scalars(select(Message).order_by(Message.id)))
        db.session.expunge_all()
        return rows


def test_send_again_of_a_failed_message_delivers_a_new_message_for_the_same_event(app, admin_client, receiver,
                                                                                   delivery_processes, monkeypatch):
    """Send again on a Failed message queues a new one (new messageId, same eventId) that the worker delivers; the
    original stays Failed with its attempt; the new row says "Replay of <messageId>" with a link to the original,
    whose details say "Sent again as …"; /metrics counts it."""
    monkeypatch.setitem(app.config, "WEBHOOKS_METRICS_PUBLIC", True)
    webhook_id, original_id, event_uuid = history(app, receiver.url("/again"), MessageStatus.FAILED)
    original_uuid = messages(app)[0].message_uuid
    answer = press_send_again(admin_client, original_id)
    assert answer.status_code == 200
    row = select_one(answer, f"tr#message-details-{original_id}")
    (delivery,) = receiver.wait_for_count(1, "/again")
    body = delivery.json()
    assert body["event"]["eventId"] == event_uuid and body["messageId"] != original_uuid
    assert f"Queued as a new message, {body['messageId']}" in text_of(select_one(row, "[role=status]"))
    wait_for(lambda: [m.status for m in messages(app)] == [MessageStatus.FAILED, MessageStatus.SENT],
             message="the new message to be Sent")
    original, copy = messages(app)
    assert (original.attempts_made, original.replay_of_id) == (1, None)
    assert (copy.message_uuid, copy.event_id, copy.webhook_id) == (body["messageId"], original.event_id, webhook_id)
    assert (copy.replay_of_id, copy.replay_of_uuid, copy.replay_id) == (original_id, original_uuid, None)

    log = admin_client.get(f"{BASE}/{webhook_id}/log")
    note = select_one(log, f"#message-row-{copy.id} .replay-note")
    assert text_of(note) == f"Replay of {original_uuid}"
    original_row = f"{BASE}/{webhook_id}/log?before={original_id + 1}#message-row-{original_id}"
    assert select_one(note, "a")["href"] == original_row
    assert select_one(log, f"#message-row-{original_id}").find(class_="replay-note") is None
    assert f"Sent again as {copy.message_uuid} (Sent)" in text_of(details(admin_client, original_id))
    copy_details = text_of(details(admin_client, copy.id))
    assert f"Replay of {original_uuid}" in copy_details and "Origin Send again" in copy_details
    assert 'webhooks_replayed_total{origin="send_again"} 1.0' in admin_client.get("/metrics").get_data(as_text=True)


def test_send_again_of_a_sent_message_sends_the_event_a_second_time(app, admin_client, receiver,
                                                                     delivery_processes):
    """A Sent message can be sent again too: the endpoint receives the same event under a second messageId."""
    _, original_id, event_uuid = history(app, receiver.url("/twice"), MessageStatus.SENT)
    assert press_send_again(admin_client, original_id).status_code == 200
    (delivery,) = receiver.wait_for_count(1, "/twice")
    assert delivery.json()["event"]["eventId"] == event_uuid
    assert delivery.json()["messageId"] != messages(app)[0].message_uuid


def test_pressing_twice_queues_one_copy(app, admin_client):
    """Without a worker the copy stays Queued: pressing again says a copy is already queued, and adds none."""
    _, original_id, _ = history(app, "https://hooks.example.com/x", MessageStatus.FAILED)
    press_send_again(admin_client, original_id)
    copy = messages(app)[1]
    again = press_send_again(admin_client, original_id)
    assert again.status_code == 200
    assert f"A copy of this event is already queued as {copy.message_uuid}." in text_of(again)
    assert len(messages(app)) == 2


def test_a_disabled_webhooks_message_shows_why_it_cannot_be_sent_again(app, admin_client):
    """For a disabled webhook the button is disabled, with the reason beside it (aria-describedby); a POST anyway
    is refused with 409 and that reason, and creates nothing; pending and test messages have no button."""
    webhook_id, original_id, _ = history(app, "https://hooks.example.com/x", MessageStatus.FAILED, enabled=False)
    body = details(admin_client, original_id)
    button = named(body, "button", "Send again")
    assert button.has_attr("disabled")
    reason = select_one(body, f"#{button['aria-describedby']}")
    assert text_of(reason) == "Its webhook “Receiver” is disabled: enable it to send messages again."
    refused = admin_client.post(f"{ACTIVITY}/messages/{original_id}/send-again", headers=HTMX,
                                data={"csrf_token": admin_client.csrf_token})
    assert refused.status_code == 409 and "is disabled: enable it to send messages again" in text_of(refused)
    assert len(messages(app)) == 1
    with app.app_context():
        db.session.get(Webhook, webhook_id).enabled = True
        pending = make_message(webhook_id, MessageStatus.QUEUED, event=make_event(asset_id=8))
        db.session.commit()
    assert select_one(details(admin_client, original_id), "#send-again-" + str(original_id)).get("disabled") is None
    assert details(admin_client, pending).get_data(as_text=True).count("Send again") == 0


def test_send_again_needs_csrf_and_an_existing_message(app, admin_client):
    """Without the CSRF token nothing is queued (400); a message no longer in the log is a 404."""
    _, original_id, _ = history(app, "https://hooks.example.com/x", MessageStatus.SENT)
    assert admin_client.post(f"{ACTIVITY}/messages/{original_id}/send-again", headers=HTMX).status_code == 400
    assert admin_client.post(f"{ACTIVITY}/messages/2147483647/send-again", headers=HTMX,
                             data={"csrf_token": admin_client.csrf_token}).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message)) == 1


def test_send_again_works_without_javascript(app, admin_client):
    """A plain form POST queues the copy and goes back to the webhook's log, which says so."""
    webhook_id, original_id, _ = history(app, "https://hooks.example.com/x", MessageStatus.FAILED)
    response = admin_client.post(f"{ACTIVITY}/messages/{original_id}/send-again",
                                 data={"csrf_token": admin_client.csrf_token})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"{BASE}/{webhook_id}/log")
    page = admin_client.get(response.headers["Location"])
    assert "Queued as a new message" in text_of(select_one(page, "#flash-region"))
