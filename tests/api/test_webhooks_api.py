"""/api/v1/webhooks: what an administrator does on the Webhooks page, a script does with a token."""

import json

import pytest
from api.helpers import assert_error
from api.management import GOOD_WEBHOOK, WEBHOOKS, call, create, scoped_token
from conftest import wait_for
from markup import parse, texts
from sqlalchemy import func, select
from webhooks.test_validation import BAD_INPUTS

from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus, Webhook, WebhookSubscription
from webhooks_app.secrets_vault import decrypt_secret, whsec_form

FORM = "/system/integrations/api/webhooks/new"


def stored_webhooks(app) -> list[tuple[str, str, bool, list[str]]]:
    with app.app_context():
        webhooks = db.session.scalars(select(Webhook).order_by(Webhook.id))
        rows = [(w.name, w.url, w.enabled, w.event_types) for w in webhooks]
        db.session.remove()
        return rows


def stored_secret(app, webhook_id: int) -> str:
    with app.app_context():
        secret = decrypt_secret(db.session.get(Webhook, webhook_id).secret_encrypted)
        db.session.remove()
        return secret


@pytest.fixture
def token(app) -> str:
    return scoped_token(app)


def test_create_answers_201_with_the_secret_once_a_location_and_an_etag(app, client, token):
    """POST creates the webhook, answers 201 with its fields, its secret (raw and whsec_ forms, as stored), a
    Location and an ETag; reading it again shows no secret."""
    response = create(client, token, events=["user.create", "asset.create"], enabled=False)
    body = response.get_json()
    assert {key: body[key] for key in ("name", "url", "events", "enabled")} == {
        "name": "Asset sync", "url": "https://hooks.example.com/netx", "events": ["asset.create", "user.create"],
        "enabled": False}
    assert body["secret"] == stored_secret(app, body["id"])
    assert body["standardWebhooksSecret"] == whsec_form(body["secret"])
    assert response.headers["Location"] == f"{WEBHOOKS}/{body['id']}"
    assert response.headers["ETag"].startswith('"')

    read = call(client, "GET", response.headers["Location"], token)
    assert read.status_code == 200
    assert "secret" not in read.get_json() and "standardWebhooksSecret" not in read.get_json()
    assert body["secret"] not in read.get_data(as_text=True)
    assert read.headers["ETag"] == response.headers["ETag"]
    assert read.get_json() == {key: value for key, value in body.items()
                               if key not in ("secret", "standardWebhooksSecret")}
    listing = call(client, "GET", WEBHOOKS, token)
    assert listing.get_json() == {"data": [read.get_json()]}


@pytest.mark.parametrize(("case", "change", "fragment"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_the_forms_own_message_and_nothing_is_stored(app, client, admin_client, token, case, change,
                                                                      fragment):
    """Every input the Add webhook form refuses, the API refuses with 422 naming the field and with exactly the
    message the form shows beside it; no row is written."""
    form_data = {**GOOD_WEBHOOK, "enabled": "y", **change, "csrf_token": admin_client.csrf_token}
    page = parse(admin_client.post(FORM, data=form_data, headers={"HX-Request": "true"}))
    [field] = change
    form_messages = texts(page, f"#{field}-errors li")
    assert form_messages and fragment in form_messages[0]

    message = assert_error(call(client, "POST", WEBHOOKS, token, json={**GOOD_WEBHOOK, **change}), 422, field)
    assert message == form_messages[0]
    assert stored_webhooks(app) == []


@pytest.mark.parametrize(("body", "field"), [
    ({"url": GOOD_WEBHOOK["url"], "events": ["asset.create"]}, "name"),
    ({"name": "x", "events": ["asset.create"]}, "url"),
    ({"name": "x", "url": GOOD_WEBHOOK["url"]}, "events"),
], ids=["no-name", "no-url", "no-events"])
def test_a_missing_field_gets_the_forms_message(app, client, token, body, field):
    """Leaving a field out is refused as the form refuses it empty: 422 with the form's words."""
    message = assert_error(call(client, "POST", WEBHOOKS, token, json=body), 422, field)
    assert message in ("Enter a name for the webhook.", "Enter the endpoint URL.", "Select at least one event.")
    assert stored_webhooks(app) == []


@pytest.mark.parametrize(("body", "field"), [
    ({**GOOD_WEBHOOK, "name": 5}, "name"),
    ({**GOOD_WEBHOOK, "events": "asset.create"}, "events"),
    ({**GOOD_WEBHOOK, "events": [1]}, "events"),
    ({**GOOD_WEBHOOK, "enabled": "yes"}, "enabled"),
    ({**GOOD_WEBHOOK, "name": None}, "name"),
    ({**GOOD_WEBHOOK, "secret": "mine"}, "secret"),
    ({**GOOD_WEBHOOK, "name": "a\u0000b"}, "name"),
    ([GOOD_WEBHOOK], "body"),
], ids=["name-number", "events-string", "events-numbers", "enabled-string", "name-null", "unknown-key", "nul",
        "array"])
def test_a_body_of_the_wrong_shape_is_refused_with_422_naming_the_field(app, client, token, body, field):
    """Wrong JSON types, null, an unknown key, a NUL character (which PostgreSQL cannot store) and a body that is not
    an object are 422 naming the field; nothing is stored."""
    assert_error(call(client, "POST", WEBHOOKS, token, json=body), 422, field)
    assert stored_webhooks(app) == []


@pytest.mark.parametrize(("raw", "content_type", "status", "field"), [
    (b'{"name": "a", "name": "b"}', "application/json", 400, "name"),
    (b'{"name": ', "application/json", 400, "body"),
    (json.dumps(GOOD_WEBHOOK).encode(), "text/plain", 415, "Content-Type"),
    (b'{"name": "' + b"x" * 70000 + b'"}', "application/json", 413, "body"),
], ids=["key-twice", "malformed", "not-json", "too-large"])
def test_bodies_are_read_as_strictly_as_the_events_api_reads_them(app, client, token, raw, content_type, status,
                                                                  field):
    """A key named twice or malformed JSON is 400, another media type 415, over 64 KiB 413, as for events."""
    response = client.post(WEBHOOKS, data=raw, content_type=content_type, headers={"Authorization": f"Bearer {token}"})
    assert_error(response, status, field)
    assert stored_webhooks(app) == []


def test_patch_needs_the_current_etag_so_two_scripts_cannot_overwrite_each_other(app, client, token):
    """PATCH without If-Match is 428; with the ETag both scripts read, the first change wins and the second gets
    412 and changes nothing; after reading again it succeeds. `*` overwrites on purpose."""
    created = create(client, token)
    url, etag = created.headers["Location"], created.headers["ETag"]
    assert_error(call(client, "PATCH", url, token, json={"name": "No precondition"}), 428, "If-Match")

    first = call(client, "PATCH", url, token, json={"name": "Script A"}, headers={"If-Match": etag})
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["name"] == "Script A" and first.headers["ETag"] != etag
    message = assert_error(call(client, "PATCH", url, token, json={"url": "https://b.example.com/"},
                                headers={"If-Match": etag}), 412, "If-Match")
    assert "changed since" in message
    assert stored_webhooks(app) == [("Script A", GOOD_WEBHOOK["url"], True, ["asset.create"])]

    fresh = call(client, "GET", url, token).headers["ETag"]
    second = call(client, "PATCH", url, token, json={"url": "https://b.example.com/"}, headers={"If-Match": fresh})
    assert second.status_code == 200
    forced = call(client, "PATCH", url, token, json={"events": ["user.update"]}, headers={"If-Match": "*"})
    assert forced.status_code == 200
    assert stored_webhooks(app) == [("Script A", "https://b.example.com/", True, ["user.update"])]


def test_a_patch_answers_the_etag_a_read_gives_and_a_new_updated_at_for_new_events(app, client, token):
    """A PATCH that adds events answers them in name order with the ETag a GET then gives, so the script can PATCH
    again with it; a change of the events alone is a change (new updatedAt); a PATCH that changes nothing is not."""
    created = create(client, token, events=["user.create"])
    url = created.headers["Location"]
    changed = call(client, "PATCH", url, token, json={"events": ["user.create", "asset.create"]},
                   headers={"If-Match": created.headers["ETag"]})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert changed.get_json()["events"] == ["asset.create", "user.create"]
    assert changed.get_json()["updatedAt"] != created.get_json()["updatedAt"]
    assert call(client, "GET", url, token).headers["ETag"] == changed.headers["ETag"]
    again = call(client, "PATCH", url, token, json={"name": "Renamed"}, headers={"If-Match": changed.headers["ETag"]})
    assert again.status_code == 200, again.get_data(as_text=True)
    same = call(client, "PATCH", url, token, json={"events": ["user.create", "asset.create"]},
                headers={"If-Match": again.headers["ETag"]})
    assert same.status_code == 200 and same.headers["ETag"] == again.headers["ETag"]


def test_patch_keeps_the_fields_left_out_and_applies_the_forms_rules(app, client, token):
    """A PATCH of one field keeps the others; a change the form would refuse is 422 with its message and changes
    nothing; enabling clears the reason an automatic disable stored."""
    created = create(client, token, enabled=False)
    url = created.headers["Location"]
    with app.app_context():
        db.session.get(Webhook, created.get_json()["id"]).disabled_reason = "DNS failure"
        db.session.commit()
    etag = call(client, "GET", url, token).headers["ETag"]
    message = assert_error(call(client, "PATCH", url, token, json={"url": "http://plain.example.com/"},
                                headers={"If-Match": etag}), 422, "url")
    assert message == "HTTPS is required: the endpoint URL must start with https://."
    assert_error(call(client, "PATCH", url, token, json={"events": []}, headers={"If-Match": etag}), 422, "events")

    enabled = call(client, "PATCH", url, token, json={"enabled": True}, headers={"If-Match": etag})
    assert enabled.status_code == 200
    body = enabled.get_json()
    assert (body["name"], body["url"], body["events"], body["enabled"], body["disabledReason"]) == (
        "Asset sync", GOOD_WEBHOOK["url"], ["asset.create"], True, None)


def test_delete_answers_204_then_404_and_honours_if_match(app, client, token):
    """DELETE with a stale If-Match is 412 and deletes nothing; without one (or with the current ETag) it deletes;
    then every call on that id is 404 in the error shape."""
    created = create(client, token)
    url = created.headers["Location"]
    call(client, "PATCH", url, token, json={"name": "Changed"}, headers={"If-Match": created.headers["ETag"]})
    assert_error(call(client, "DELETE", url, token, headers={"If-Match": created.headers["ETag"]}), 412, "If-Match")
    assert len(stored_webhooks(app)) == 1
    response = call(client, "DELETE", url, token)
    assert response.status_code == 204 and response.get_data() == b""
    assert stored_webhooks(app) == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WebhookSubscription)) == 0
    for method, path in [("GET", url), ("DELETE", url), ("POST", f"{url}/reset-secret"), ("POST", f"{url}/test"),
                         ("GET", f"{url}/messages")]:
        assert_error(call(client, method, path, token), 404, "webhook_id")
    assert_error(call(client, "PATCH", url, token, json={}, headers={"If-Match": "*"}), 404, "webhook_id")


def test_reset_secret_answers_the_new_secret_once_and_the_old_one_stops(app, client, token):
    """reset-secret answers 200 with a new secret (stored encrypted, different from the first) and a new ETag."""
    created = create(client, token)
    webhook_id, first = created.get_json()["id"], created.get_json()["secret"]
    response = call(client, "POST", f"{WEBHOOKS}/{webhook_id}/reset-secret", token)
    assert response.status_code == 200
    body = response.get_json()
    assert body["secret"] != first and body["secret"] == stored_secret(app, webhook_id)
    assert body["standardWebhooksSecret"] == whsec_form(body["secret"])
    assert body["secret"] not in call(client, "GET", f"{WEBHOOKS}/{webhook_id}", token).get_data(as_text=True)


def test_test_queues_a_test_message_and_its_location_shows_the_outcome(app, client, token, receiver,
                                                                        delivery_processes):
    """POST …/test answers 202 at once with the test message's id; the worker sends it to the endpoint and the
    message's Location then shows it Sent with the endpoint's answer in its attempt."""
    webhook_id = create(client, token, url=receiver.url("/status/200")).get_json()["id"]
    response = call(client, "POST", f"{WEBHOOKS}/{webhook_id}/test", token)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued"
    assert response.headers["Location"] == f"/api/v1/messages/{body['messageId']}"
    [delivery] = receiver.wait_for_count(1)
    sent = json.loads(delivery.body)
    assert (sent["messageId"], sent["event"]["systemEventType"], sent["event"]["userId"]) == (
        body["messageId"], "WEBHOOK_TEST", 0)

    def outcome():
        answer = call(client, "GET", response.headers["Location"], token).get_json()
        return answer if answer["status"] == MessageStatus.SENT else None

    detail = wait_for(outcome, message="the test message to be Sent")
    assert detail["test"] is True and detail["eventType"] == "webhook.test"
    [attempt] = detail["attempts"]
    assert (attempt["succeeded"], attempt["statusCode"], attempt["responseBody"]) == (True, 200, "answer /status/200")


def test_a_test_while_redis_is_down_waits_for_the_sweeper(app, client, token, fresh_redis):
    """With Redis stopped, …/test still answers 202 and leaves the message Queued and never enqueued, so the
    scheduler's sweeper sends it when Redis answers again."""
    webhook_id = create(client, token).get_json()["id"]
    fresh_redis.stop()
    response = call(client, "POST", f"{WEBHOOKS}/{webhook_id}/test", token)
    assert response.status_code == 202
    with app.app_context():
        message = db.session.scalar(select(Message).where(Message.message_uuid == response.get_json()["messageId"]))
        assert (message.status, message.is_test, message.enqueued_at) == (MessageStatus.QUEUED, True, None)
        db.session.remove()


def test_unknown_paths_and_methods_answer_in_the_error_shape(client, token):
    """An unknown id, an id out of range (with any method), an unknown path and a wrong method answer JSON errors,
    never HTML."""
    assert_error(call(client, "GET", f"{WEBHOOKS}/999999", token), 404, "webhook_id")
    assert_error(call(client, "GET", f"{WEBHOOKS}/2147483648", token), 404, "path")
    # An id out of range matches no route whatever the method (werkzeug checks methods before converting ids).
    assert_error(call(client, "PATCH", f"{WEBHOOKS}/2147483648", token, json={}), 404, "path")
    assert_error(call(client, "GET", f"{WEBHOOKS}/99999999999/test", token), 404, "path")
    assert_error(call(client, "GET", "/api/v1/nothing-here", token), 404, "path")
    response = call(client, "PUT", WEBHOOKS, token, json=GOOD_WEBHOOK)
    assert_error(response, 405, "method")
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}
