"""Attempt details like GitHub's Recent Deliveries: the request headers sent (signature, never the secret), the
answer's status, headers (capped) and body, copy buttons, and the retry ladder in words."""

import json
from datetime import timedelta

from conftest import wait_for
from factories import make_message, make_webhook
from markup import parse, select_all, select_one, text_of, texts
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Message, MessageStatus, utcnow
from webhooks_app.secrets_vault import whsec_form
from webhooks_app.services.transport import MAX_HEADER_VALUE, MAX_HEADERS
from webhooks_app.services.webhooks import WebhookFields, create_webhook

BASE = "/system/integrations/api"
HTMX = {"HX-Request": "true"}


def details(client, message_id: int):
    response = client.get(f"{BASE}/activity/messages/{message_id}?columns=4", headers=HTMX)
    assert response.status_code == 200
    return response


def test_a_delivery_records_the_headers_sent_and_received_without_the_secret(app, admin_client, api_token,
                                                                            receiver, delivery_processes):
    """A real delivery stores the headers it sent (the Standard Webhooks signature the endpoint got) and the
    answer's first 40 headers with values cut to 300 characters; the details show them, and the secret appears
    nowhere (the endpoint's header echoing it is stored with the secret removed)."""
    with app.app_context():
        webhook, secret = create_webhook(WebhookFields("Headers", receiver.url("/headers"), ("asset.create",), True))
        db.session.commit()
    response = admin_client.post("/api/v1/events", json={"type": "asset.create", "assetId": 5, "userId": 1},
                                 headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 202
    (delivery,) = receiver.wait_for_count(1)
    sent = {name.lower(): value for name, value in delivery.headers.items()}

    def attempt_row():
        with app.app_context():
            return db.session.scalar(select(Attempt))

    wait_for(lambda: attempt_row() is not None, message="the attempt to be recorded")
    attempt = attempt_row()
    request_headers = json.loads(attempt.request_headers)
    assert request_headers["webhook-signature"] == sent["webhook-signature"]
    assert request_headers["webhook-id"] == sent["webhook-id"]
    received = json.loads(attempt.response_headers)
    assert len(received) == MAX_HEADERS
    assert all(len(value) <= MAX_HEADER_VALUE for _, value in received)
    assert dict(received)["X-Echo-Token"] == "[secret removed]"

    page = details(admin_client, attempt.message_id)
    body = page.get_data(as_text=True)
    assert secret not in body and whsec_form(secret) not in body
    shown = dict(zip(texts(page, "dl.headers dt"), texts(page, "dl.headers dd"), strict=True))
    assert shown["webhook-signature"] == sent["webhook-signature"]
    assert shown["X-Echo-Token"] == "[secret removed]" and shown["X-Long"] == "v" * MAX_HEADER_VALUE
    assert "Response: HTTP 204" in text_of(page)
    payload = json.loads(select_one(page, "pre.payload").get_text())
    assert payload["messageTime"] == int(sent["webhook-timestamp"])
    assert payload["token"] != secret


def test_details_offer_copy_buttons_for_payload_message_id_and_event_id(app, admin_client):
    """The payload, the messageId and the eventId each have a Copy button whose target holds exactly that text."""
    with app.app_context():
        message_id = make_message(make_webhook(), MessageStatus.SENT, attempts=[(True, 204, None, "")])
        db.session.commit()
        message = db.session.get(Message, message_id)
        expected = {"Copy messageId": message.message_uuid, "Copy eventId": message.event.event_uuid}
    page = parse(details(admin_client, message_id))
    buttons = {button["aria-label"]: button["data-copy"] for button in select_all(page, "button[data-copy]")}
    assert set(buttons) == {"Copy messageId", "Copy eventId", "Copy payload"}
    for label, value in expected.items():
        assert text_of(select_one(page, buttons[label])) == value
    assert json.loads(select_one(page, buttons["Copy payload"]).get_text())["messageId"] == expected["Copy messageId"]


def test_the_ladder_is_said_in_words(app, admin_client):
    """A message on its third failed attempt with the next due in 25 minutes reads "Attempt 3 of 6 failed · next in
    25 min"; a Sent one says on which attempt; each attempt row says "n of 6"."""
    with app.app_context():
        webhook_id = make_webhook()
        failing = (False, 503, "http_status", "")
        retrying = make_message(webhook_id, MessageStatus.SCHEDULED_RETRY, attempts=[failing] * 3)
        db.session.get(Message, retrying).next_attempt_at = utcnow() + timedelta(minutes=25, seconds=20)
        sent = make_message(webhook_id, MessageStatus.SENT, attempts=[failing, (True, 200, None, "")])
        db.session.commit()
    page = parse(details(admin_client, retrying))
    assert text_of(select_one(page, ".ladder")) == "Attempt 3 of 6 failed · next in 25 min"
    assert texts(page, "tr.attempt-row td:first-child") == ["1 of 6", "2 of 6", "3 of 6"]
    assert text_of(select_one(parse(details(admin_client, sent)), ".ladder")) == "Sent on attempt 2 of 6"
