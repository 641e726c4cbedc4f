"""POST /api/v1/events, emit_event() and the `emit` / `create-api-token` commands: validation, storage, fan-out."""

import io
import json
import threading
import time
import uuid

import pytest
from api.helpers import (
    ASSET_CREATE,
    EVENT_ID,
    URL,
    add_webhook,
    assert_error,
    bearer,
    post_event,
    stored_counts,
    stored_events,
    stored_messages,
)
from conftest import wait_for
from sqlalchemy import func, select

from webhooks_app.events import EVENT_NAMES
from webhooks_app.extensions import db
from webhooks_app.models import ApiToken, MessageStatus
from webhooks_app.services.api_tokens import create_api_token, revoke_api_token
from webhooks_app.services.intake import IntakeError, emit_event

# Each event type, the subject keys its payload starts with, and its systemEventType.
SUBJECTS = {
    "asset.addToFolder": ({"assetId": 101, "folderId": 7}, "ASSET_ADD_TO_FOLDER"),
    "asset.checkin": ({"assetId": 102}, "ASSET_CHECKIN"),
    "asset.checkout": ({"assetId": 103}, "ASSET_CHECKOUT"),
    "asset.create": ({"assetId": 104}, "ASSET_CREATE"),
    "asset.delete": ({"assetId": 105}, "ASSET_DELETE"),
    "asset.expire": ({"assetId": 106}, "ASSET_EXPIRE"),
    "folder.create": ({"folderId": 8}, "FOLDER_CREATE"),
    "folder.update": ({"folderId": 9}, "FOLDER_UPDATE"),
    "user.create": ({"targetUserId": 21}, "USER_CREATE"),
    "user.expire": ({"targetUserId": 22}, "USER_EXPIRE"),
    "user.update": ({"targetUserId": 23}, "USER_UPDATE"),
}


# --- refused input ---------------------------------------------------------------------------------------------

BAD_BODIES = [
    pytest.param(b'{"type": "asset.create", "assetId": 101,', 400, "body", id="malformed-json"),
    pytest.param(b"", 400, "body", id="empty-body"),
    pytest.param(b'\xff{"type": "asset.create"}', 415, "body", id="not-utf8"),
    pytest.param(b'"asset.create"', 400, "body", id="json-string"),
    pytest.param(b"null", 400, "body", id="json-null"),
]

BAD_EVENTS = [
    pytest.param({**ASSET_CREATE, "assetId": "101"}, 400, "assetId", id="assetId-string"),
    pytest.param({**ASSET_CREATE, "assetId": True}, 400, "assetId", id="assetId-true"),
    pytest.param({**ASSET_CREATE, "assetId": 0}, 400, "assetId", id="assetId-zero"),
    pytest.param({**ASSET_CREATE, "assetId": -1}, 400, "assetId", id="assetId-negative"),
    pytest.param({**ASSET_CREATE, "assetId": 101.5}, 400, "assetId", id="assetId-float"),
    pytest.param({**ASSET_CREATE, "assetId": None}, 400, "assetId", id="assetId-null"),
    pytest.param({"type": "asset.create", "userId": 1}, 422, "assetId", id="assetId-missing"),
    pytest.param({"type": "asset.create", "assetId": 101}, 422, "userId", id="userId-missing"),
    pytest.param({**ASSET_CREATE, "userId": "1"}, 400, "userId", id="userId-string"),
    pytest.param({**ASSET_CREATE, "eventId": "not-a-uuid"}, 400, "eventId", id="eventId-not-uuid"),
    pytest.param({**ASSET_CREATE, "eventId": 12345}, 400, "eventId", id="eventId-number"),
    pytest.param({**ASSET_CREATE, "eventTime": "now"}, 400, "eventTime", id="eventTime-string"),
    pytest.param({**ASSET_CREATE, "eventTime": -1}, 400, "eventTime", id="eventTime-negative"),
    pytest.param({**ASSET_CREATE, "eventTime": 1.5}, 400, "eventTime", id="eventTime-float"),
    pytest.param({"type": "folder.update", "folderId": 9, "userId": 1, "changed": "name"}, 400, "changed",
                 id="changed-not-a-list"),
    pytest.param({"type": "user.update", "targetUserId": 2, "userId": 1, "changed": ["email", 3]}, 400, "changed",
                 id="changed-not-strings"),
    pytest.param({**ASSET_CREATE, "changed": ["name"]}, 422, "changed", id="changed-on-asset-create"),
    pytest.param({"assetId": 101, "userId": 1}, 422, "type", id="type-missing"),
    pytest.param({**ASSET_CREATE, "type": "asset.rename"}, 422, "type", id="type-unknown"),
    pytest.param({**ASSET_CREATE, "type": "ASSET_CREATE"}, 422, "type", id="type-system-event-type"),
    pytest.param({**ASSET_CREATE, "type": 5}, 400, "type", id="type-number"),
    pytest.param({"type": "asset.addToFolder", "assetId": 101, "userId": 1}, 422, "folderId",
                 id="addToFolder-without-folderId"),
    pytest.param({"type": "user.expire", "userId": 1}, 422, "targetUserId", id="user-expire-without-targetUserId"),
    pytest.param({"type": "folder.create", "folderId": 8, "userId": 1, "assetId": 101}, 422, "assetId",
                 id="asset-key-on-folder-event"),
    pytest.param({**ASSET_CREATE, "color": "red"}, 422, "color", id="unknown-extra-field"),
    pytest.param({"type": "folder.create", "folderId": 8, "userId": 1, "source": "upload"}, 422, "source",
                 id="source-on-folder-create"),
    pytest.param({"type": "asset.checkin", "assetId": 101, "userId": 1, "source": "upload"}, 422, "source",
                 id="source-on-asset-checkin"),
    pytest.param({**ASSET_CREATE, "source": "copy"}, 422, "source", id="source-unknown"),
    pytest.param({**ASSET_CREATE, "source": 1}, 400, "source", id="source-not-a-string"),
]


@pytest.mark.parametrize(("raw", "status", "field"), BAD_BODIES)
def test_a_body_that_is_not_a_json_object_is_refused_and_nothing_is_stored(app, client, api_token, raw, status,
                                                                            field):
    """Malformed JSON, an empty body and JSON that is neither an object nor an array (a batch) get 400 naming
    "body"; non-UTF-8 bytes 415."""
    add_webhook(app)
    response = post_event(client, api_token, raw=raw)
    assert_error(response, status, field)
    assert stored_counts(app) == (0, 0)


@pytest.mark.parametrize(("event", "status", "field"), BAD_EVENTS)
def test_an_invalid_event_is_refused_naming_the_field_and_nothing_is_stored(app, client, api_token, event, status,
                                                                            field):
    """Wrong types answer 400 and unknown or missing fields 422, naming the field, with no event or message stored.

    A webhook subscribed to every event exists, so an event wrongly accepted would leave rows behind.
    """
    add_webhook(app)
    response = post_event(client, api_token, event)
    message = assert_error(response, status, field)
    assert field in message
    assert stored_counts(app) == (0, 0)


def test_an_unknown_type_is_named_in_the_message(client, api_token):
    """The 422 for an unknown type repeats the type that was sent."""
    message = assert_error(post_event(client, api_token, {**ASSET_CREATE, "type": "asset.rename"}), 422, "type")
    assert "asset.rename" in message


def revoked_token(app) -> str:
    with app.app_context():
        row, token = create_api_token("revoked")
        db.session.commit()
        revoke_api_token(row.id)
        db.session.commit()
    return token


AUTHORIZATIONS = [
    pytest.param(lambda app, token: None, id="missing"),
    pytest.param(lambda app, token: "Bearer", id="bearer-without-token"),
    pytest.param(lambda app, token: "Bearer ", id="bearer-blank"),
    pytest.param(lambda app, token: "Bearer garbage", id="garbage"),
    pytest.param(lambda app, token: "Bearer whk_" + "x" * 43, id="well-formed-but-unknown"),
    pytest.param(lambda app, token: token, id="token-without-scheme"),
    pytest.param(lambda app, token: f"Basic {token}", id="basic-scheme"),
    pytest.param(lambda app, token: f"Bearer {token[:-1]}", id="truncated"),
    pytest.param(lambda app, token: f"Bearer {revoked_token(app)}", id="revoked"),
]


@pytest.mark.parametrize("authorization", AUTHORIZATIONS)
def test_a_missing_wrong_or_revoked_token_gets_401_and_nothing_is_stored(app, client, api_token, authorization):
    """Without a live bearer token the answer is 401 with WWW-Authenticate, and the event is not stored."""
    add_webhook(app)
    value = authorization(app, api_token)
    headers = {} if value is None else {"Authorization": value}
    response = client.post(URL, json=ASSET_CREATE, headers=headers)
    assert_error(response, 401, "Authorization")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored_counts(app) == (0, 0)


def test_authentication_is_checked_before_the_body(app, client):
    """An unauthenticated request with an invalid or oversized body still gets 401, revealing nothing else."""
    for data in (b"{not json", b"x" * (64 * 1024 + 1)):
        response = client.post(URL, data=data, content_type="application/json")
        assert_error(response, 401, "Authorization")
    assert stored_counts(app) == (0, 0)


def padded(event: dict, size: int) -> bytes:
    """The event as JSON, padded with trailing spaces to exactly `size` bytes."""
    body = json.dumps(event).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_a_body_over_64_kib_gets_413_and_nothing_is_stored(app, client, api_token):
    """One byte over 64 KiB is refused with 413 naming "body"; exactly 64 KiB is still accepted."""
    add_webhook(app)
    response = post_event(client, api_token, raw=padded(ASSET_CREATE, 64 * 1024 + 1))
    message = assert_error(response, 413, "body")
    assert "64 KiB" in message
    assert stored_counts(app) == (0, 0)

    at_limit = post_event(client, api_token, raw=padded(ASSET_CREATE, 64 * 1024))
    assert at_limit.status_code == 202, at_limit.get_data(as_text=True)
    assert stored_counts(app) == (1, 1)


def test_a_chunked_body_over_64_kib_without_content_length_gets_413(app, client, api_token):
    """A body sent without Content-Length (chunked, as gunicorn passes it on) is refused with 413 past 64 KiB."""
    add_webhook(app)
    body = padded(ASSET_CREATE, 200 * 1024)
    response = client.post(
        URL, input_stream=io.BytesIO(body), content_type="application/json",
        headers={**bearer(api_token), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert stored_counts(app) == (0, 0)
    assert_error(response, 413, "body")


def test_a_chunked_body_within_64_kib_is_accepted(app, client, api_token):
    """A body sent without Content-Length but within the limit is read whole and accepted."""
    add_webhook(app)
    response = client.post(
        URL, input_stream=io.BytesIO(padded(ASSET_CREATE, 1000)), content_type="application/json",
        headers={**bearer(api_token), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    assert stored_counts(app) == (1, 1)


def test_ids_beyond_javascripts_exact_integers_are_refused(app, client, api_token):
    """An id above 2**53 - 1, which JavaScript receivers cannot read exactly, is refused with 400."""
    add_webhook(app)
    response = post_event(client, api_token, {"type": "asset.create", "assetId": 2**53, "userId": 1})
    assert_error(response, 400, "assetId")
    assert stored_counts(app) == (0, 0)


def test_deeply_nested_json_is_refused_as_a_bad_body(app, client, api_token):
    """JSON nested thousands of levels deep (well under 64 KiB) gets 400 naming "body", not a server error."""
    add_webhook(app)
    raw = b'{"type": "asset.create", "assetId": 101, "userId": 1, "x": ' + b"[" * 20000 + b"]" * 20000 + b"}"
    assert len(raw) < 64 * 1024
    response = post_event(client, api_token, raw=raw)
    assert_error(response, 400, "body")
    assert stored_counts(app) == (0, 0)


# --- accepted events -------------------------------------------------------------------------------------------


def test_an_accepted_event_answers_202_with_its_event_id_and_message_count(app, client, api_token):
    """202 {"eventId", "messages"}: one Queued message per enabled webhook subscribed to the event's type."""
    first = add_webhook(app, events=("asset.create",))
    second = add_webhook(app, events=("asset.create", "folder.create"))
    add_webhook(app, events=("folder.create",))
    add_webhook(app, events=("asset.create",), enabled=False)

    response = post_event(client, api_token, ASSET_CREATE)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    answer = response.get_json()
    assert set(answer) == {"eventId", "messages"}
    assert str(uuid.UUID(answer["eventId"])) == answer["eventId"]
    assert answer["messages"] == 2

    [(event_uuid, event_type, _)] = stored_events(app)
    assert (event_uuid, event_type) == (answer["eventId"], "asset.create")
    assert stored_messages(app) == [(first, "asset.create", MessageStatus.QUEUED),
                                    (second, "asset.create", MessageStatus.QUEUED)]


def test_an_event_nobody_subscribes_to_is_accepted_with_no_messages(app, client, api_token):
    """With no subscribed webhook the event is still accepted: 202 with messages 0."""
    add_webhook(app, events=("folder.create",))
    response = post_event(client, api_token, ASSET_CREATE)
    assert response.status_code == 202
    assert response.get_json()["messages"] == 0
    assert stored_messages(app) == []


def test_the_same_event_id_twice_is_accepted_once(app, client, api_token):
    """Re-sending an eventId answers as the first time did and creates no second set of messages."""
    add_webhook(app, events=("asset.create",))
    add_webhook(app, events=("asset.create",))
    event = {**ASSET_CREATE, "eventId": EVENT_ID}

    first = post_event(client, api_token, event)
    second = post_event(client, api_token, event)
    assert first.status_code == second.status_code == 202
    assert first.get_json() == second.get_json() == {"eventId": EVENT_ID, "messages": 2}
    assert stored_counts(app) == (1, 2)


def test_the_same_event_id_sent_twice_at_once_is_stored_once(app, api_token):
    """Two requests racing with one eventId both get the same 202 answer; one event and its messages are stored."""
    add_webhook(app, events=("asset.create",))
    event = {**ASSET_CREATE, "eventId": EVENT_ID}
    start = threading.Barrier(2)
    answers = []

    def post():
        client = app.test_client()
        start.wait()
        response = post_event(client, api_token, event)
        answers.append((response.status_code, response.get_json()))

    racers = [threading.Thread(target=post) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=30)
    assert answers == [(202, {"eventId": EVENT_ID, "messages": 1})] * 2
    assert stored_counts(app) == (1, 1)


def test_a_refused_event_still_marks_its_token_used(app, client, api_token):
    """The token's last use is recorded even when the event it carried is refused."""
    response = post_event(client, api_token, {"type": "asset.create", "userId": 1})
    assert response.status_code == 422
    with app.app_context():
        assert db.session.scalars(select(ApiToken.last_used_at)).one() is not None


def test_a_given_event_id_is_kept_and_a_missing_one_is_generated(app, client, api_token):
    """The eventId sent is the one answered and stored; without one, every event gets a fresh UUID."""
    given = post_event(client, api_token, {**ASSET_CREATE, "eventId": EVENT_ID}).get_json()["eventId"]
    generated = [post_event(client, api_token, ASSET_CREATE).get_json()["eventId"] for _ in range(2)]
    assert given == EVENT_ID
    assert len({given, *generated}) == 3
    assert [row[0] for row in stored_events(app)] == [given, *generated]


@pytest.mark.parametrize("source", ["reimport", "resync"])
def test_reimports_and_resyncs_trigger_nothing(app, client, api_token, source):
    """asset.create from a reimport or resync is acknowledged (202, messages 0) but nothing is stored."""
    add_webhook(app, events=("asset.create",))
    response = post_event(client, api_token, {**ASSET_CREATE, "source": source})
    assert response.status_code == 202
    assert response.get_json()["messages"] == 0
    assert stored_counts(app) == (0, 0)


def test_an_upload_triggers_asset_create(app, client, api_token):
    """asset.create with source "upload" creates messages, and "source" is not part of the payload."""
    add_webhook(app, events=("asset.create",))
    response = post_event(client, api_token, {**ASSET_CREATE, "source": "upload"})
    assert response.status_code == 202
    assert response.get_json()["messages"] == 1
    [(_, _, payload)] = stored_events(app)
    assert "source" not in payload
    assert stored_counts(app) == (1, 1)


CHANGES = [
    pytest.param("folder.update", {"folderId": 9}, ["name"], 1, id="folder-name"),
    pytest.param("folder.update", {"folderId": 9}, ["portalImage"], 1, id="folder-portalImage"),
    pytest.param("folder.update", {"folderId": 9}, ["color", "parent"], 1, id="folder-unlisted-and-listed"),
    pytest.param("folder.update", {"folderId": 9}, ["color"], 0, id="folder-only-unlisted"),
    pytest.param("folder.update", {"folderId": 9}, [], 0, id="folder-nothing-changed"),
    pytest.param("folder.update", {"folderId": 9}, None, 1, id="folder-changed-omitted"),
    pytest.param("user.update", {"targetUserId": 23}, ["phone3"], 1, id="user-phone3"),
    pytest.param("user.update", {"targetUserId": 23}, ["notify"], 1, id="user-notify"),
    pytest.param("user.update", {"targetUserId": 23}, ["color"], 0, id="user-only-unlisted"),
    pytest.param("user.update", {"targetUserId": 23}, ["lastLogin", "avatar"], 0, id="user-several-unlisted"),
    pytest.param("user.update", {"targetUserId": 23}, None, 1, id="user-changed-omitted"),
]


@pytest.mark.parametrize(("event_type", "subject", "changed", "messages"), CHANGES)
def test_updates_trigger_only_when_a_listed_field_changed(app, client, api_token, event_type, subject, changed,
                                                          messages):
    """folder.update and user.update trigger when `changed` names a listed field or is omitted, else store nothing."""
    add_webhook(app, events=(event_type,))
    event = {"type": event_type, **subject, "userId": 1}
    if changed is not None:
        event["changed"] = changed
    response = post_event(client, api_token, event)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["messages"] == messages
    assert stored_counts(app) == (messages, messages)
    for _, _, payload in stored_events(app):
        assert "changed" not in payload


@pytest.mark.parametrize("event_type", list(SUBJECTS))
def test_every_event_type_stores_the_documented_payload(app, client, api_token, event_type):
    """The stored `event` is the subject keys, then systemEventType, eventId, eventTime and userId, in that order."""
    subject, system_event_type = SUBJECTS[event_type]
    add_webhook(app, events=(event_type,))
    event = {"type": event_type, "userId": 5, "eventTime": 1_700_000_000, "eventId": EVENT_ID, **subject}
    response = post_event(client, api_token, event)
    assert response.get_json() == {"eventId": EVENT_ID, "messages": 1}

    [(event_uuid, stored_type, payload)] = stored_events(app)
    assert (event_uuid, stored_type) == (EVENT_ID, event_type)
    expected = {**subject, "systemEventType": system_event_type, "eventId": EVENT_ID, "eventTime": 1_700_000_000,
                "userId": 5}
    assert payload == expected
    assert list(payload) == list(expected)


def test_every_event_type_is_covered():
    """The payload table above names every event type in the catalogue."""
    assert sorted(SUBJECTS) == sorted(EVENT_NAMES)


def test_event_time_defaults_to_now(app, client, api_token):
    """Without eventTime the payload carries the current epoch second; eventTime 0 is kept as given."""
    before = int(time.time())
    post_event(client, api_token, {"type": "user.expire", "targetUserId": 22, "userId": 1})
    after = int(time.time())
    post_event(client, api_token, {"type": "user.expire", "targetUserId": 22, "userId": 1, "eventTime": 0})
    [(_, _, defaulted), (_, _, given)] = stored_events(app)
    assert before <= defaulted["eventTime"] <= after
    assert list(defaulted) == ["targetUserId", "systemEventType", "eventId", "eventTime", "userId"]
    assert given["eventTime"] == 0


def test_every_event_type_reaches_a_subscribed_endpoint(app, client, api_token, receiver, delivery_processes):
    """All 11 event types, sent to a webhook subscribed to all of them, are delivered with their subject keys."""
    add_webhook(app, url=receiver.url("/ok/all"), events=EVENT_NAMES)
    sent = {}
    for event_type, (subject, _) in SUBJECTS.items():
        response = post_event(client, api_token, {"type": event_type, **subject, "userId": 1})
        assert response.status_code == 202, response.get_data(as_text=True)
        assert response.get_json()["messages"] == 1
        sent[event_type] = response.get_json()["eventId"]

    deliveries = receiver.wait_for_count(11, path_prefix="/ok/all")
    assert len(deliveries) == 11
    delivered = {delivery.json()["event"]["systemEventType"]: delivery.json()["event"] for delivery in deliveries}
    assert len(delivered) == 11
    for event_type, (subject, system_event_type) in SUBJECTS.items():
        event = delivered[system_event_type]
        assert list(event) == [*subject, "systemEventType", "eventId", "eventTime", "userId"]
        assert {key: event[key] for key in subject} == subject
        assert event["eventId"] == sent[event_type]
        assert event["userId"] == 1
    wait_for(lambda: [status for _, _, status in stored_messages(app)] == [MessageStatus.SENT] * 11,
             message="all 11 messages to be Sent")


# --- emit_event() ----------------------------------------------------------------------------------------------


def test_emit_event_stores_the_event_and_its_messages(app):
    """emit_event(dict) in an app context validates, stores and commits, returning the eventId and message ids."""
    webhook_id = add_webhook(app, events=("folder.create",))
    with app.app_context():
        accepted = emit_event({"type": "folder.create", "folderId": 8, "userId": 1, "eventId": EVENT_ID})
        assert accepted.event_uuid == EVENT_ID
        assert len(accepted.message_ids) == 1 and not accepted.duplicate
        again = emit_event({"type": "folder.create", "folderId": 8, "userId": 1, "eventId": EVENT_ID})
        assert again.duplicate and again.message_ids == accepted.message_ids
        db.session.remove()
    [(_, _, payload)] = stored_events(app)
    assert list(payload) == ["folderId", "systemEventType", "eventId", "eventTime", "userId"]
    assert payload["systemEventType"] == "FOLDER_CREATE"
    assert stored_messages(app) == [(webhook_id, "folder.create", MessageStatus.QUEUED)]


def test_emit_event_with_the_callers_writes_pending_commits_them_together(app):
    """A host app that calls emit_event with writes of its own pending in the session gets both committed at once:
    the event is stored in that session (on SQLite a store on a connection of its own would wait for the write
    lock the session holds)."""
    add_webhook(app, events=("asset.create",))
    with app.app_context():
        create_api_token("the host app's own write")  # flushed: on SQLite the session now holds the write lock
        started = time.monotonic()
        accepted = emit_event(ASSET_CREATE)
        assert time.monotonic() - started < 5
        db.session.remove()
    assert len(accepted.message_ids) == 1
    with app.app_context():
        assert list(db.session.scalars(select(ApiToken.name))) == ["the host app's own write"]
        db.session.remove()
    assert stored_counts(app) == (1, 1)


@pytest.mark.parametrize(("data", "status", "field"), [
    pytest.param({"type": "user.expire", "userId": 1}, 422, "targetUserId", id="missing-subject"),
    pytest.param({**ASSET_CREATE, "assetId": "101"}, 400, "assetId", id="wrong-type"),
    pytest.param({**ASSET_CREATE, "type": "asset.rename"}, 422, "type", id="unknown-type"),
    pytest.param([ASSET_CREATE], 400, "body", id="not-a-dict"),
])
def test_emit_event_raises_intake_error_on_bad_input(app, data, status, field):
    """emit_event raises IntakeError carrying the HTTP status and the field, and stores nothing."""
    add_webhook(app)
    with app.app_context():
        with pytest.raises(IntakeError) as raised:
            emit_event(data)
        assert (raised.value.status, raised.value.field) == (status, field)
        assert field in raised.value.message
        db.session.rollback()
        db.session.remove()
    assert stored_counts(app) == (0, 0)


# --- command line ----------------------------------------------------------------------------------------------


def test_create_api_token_prints_a_token_that_works_on_the_api(app, client):
    """`create-api-token DAM` prints a bearer token, stored under that name, that the API accepts."""
    result = app.test_cli_runner().invoke(args=["create-api-token", "DAM"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("whk_") and len(token.splitlines()) == 1
    with app.app_context():
        assert list(db.session.scalars(select(ApiToken.name))) == ["DAM"]
        db.session.remove()
    assert post_event(client, token, ASSET_CREATE).status_code == 202


def test_create_api_token_needs_a_name(app):
    """A blank name is refused with a message and no token is made."""
    result = app.test_cli_runner().invoke(args=["create-api-token", "   "])
    assert result.exit_code != 0
    assert "name" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0
        db.session.remove()


def test_emit_command_stores_the_event(app):
    """`emit asset.create --asset-id 101 --user-id 1` stores the documented payload and queues its message."""
    add_webhook(app, events=("asset.create",))
    result = app.test_cli_runner().invoke(args=["emit", "asset.create", "--asset-id", "101", "--user-id", "1"])
    assert result.exit_code == 0, result.output
    [(event_uuid, event_type, payload)] = stored_events(app)
    assert result.output.strip() == f"eventId {event_uuid}: 1 message(s)"
    assert event_type == "asset.create"
    assert payload == {"assetId": 101, "systemEventType": "ASSET_CREATE", "eventId": event_uuid,
                       "eventTime": payload["eventTime"], "userId": 1}
    assert list(payload) == ["assetId", "systemEventType", "eventId", "eventTime", "userId"]
    assert stored_counts(app) == (1, 1)


def test_emit_command_passes_every_option_through(app):
    """--folder-id, --event-id, --event-time and repeated --changed reach the intake; a repeat is reported."""
    add_webhook(app, events=("folder.update",))
    args = ["emit", "folder.update", "--folder-id", "9", "--user-id", "4", "--event-id", EVENT_ID,
            "--event-time", "1700000000", "--changed", "color", "--changed", "name"]
    runner = app.test_cli_runner()
    first = runner.invoke(args=args)
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"eventId {EVENT_ID}: 1 message(s)"
    again = runner.invoke(args=args)
    assert again.exit_code == 0, again.output
    assert "already accepted earlier" in again.output
    [(_, _, payload)] = stored_events(app)
    assert payload == {"folderId": 9, "systemEventType": "FOLDER_UPDATE", "eventId": EVENT_ID,
                       "eventTime": 1_700_000_000, "userId": 4}
    assert stored_counts(app) == (1, 1)


@pytest.mark.parametrize(("args", "field"), [
    pytest.param(["emit", "user.expire", "--user-id", "1"], "targetUserId", id="missing-target-user"),
    pytest.param(["emit", "asset.rename", "--asset-id", "1", "--user-id", "1"], "type", id="unknown-type"),
    pytest.param(["emit", "asset.create", "--asset-id", "0", "--user-id", "1"], "assetId", id="zero-asset-id"),
    pytest.param(["emit", "folder.create", "--folder-id", "8", "--user-id", "1", "--source", "upload"], "source",
                 id="source-on-folder"),
])
def test_a_bad_emit_exits_non_zero_naming_the_field(app, args, field):
    """A refused event makes `emit` exit non-zero with a message that names the field, storing nothing."""
    add_webhook(app)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0
    assert field in result.output
    assert stored_counts(app) == (0, 0)
