"""POST /api/v1/events with a JSON array: up to 500 events, validated all or nothing, stored in one transaction;
their messages are made by the worker's fan-out (here called as the worker calls it)."""

import json
import uuid

import pytest
from api.helpers import (
    ASSET_CREATE,
    add_webhook,
    assert_error,
    make_owed_messages,
    post_event,
    stored_counts,
    stored_events,
)
from sqlalchemy import select

from webhooks_app.extensions import db, queue_redis
from webhooks_app.models import Event, FanOut, Message, MessageStatus, utcnow
from webhooks_app.services.batch_intake import BatchRefused, emit_batch
from webhooks_app.services.dispatch import batch_request_key
from webhooks_app.services.fan_out import make_fan_out_messages
from webhooks_app.services.log_filters import Search

FOLDER_CREATE = {"type": "folder.create", "folderId": 5, "userId": 1}
USER_UPDATE = {"type": "user.update", "targetUserId": 7, "userId": 1, "changed": ["email"]}


def test_a_batch_is_stored_with_its_messages_and_answered_in_order(app, client, api_token):
    """A batch of three events answers 202 with each event's eventId and message count in the batch's order, and
    stores each event; its fan-out makes one message per enabled webhook subscribed to it, dated when made."""
    add_webhook(app, events=["asset.create", "folder.create"])
    add_webhook(app, events=["asset.create"])
    add_webhook(app, events=["asset.create"], enabled=False)
    event_id = str(uuid.uuid4())
    response = post_event(client, api_token, [ASSET_CREATE, {**FOLDER_CREATE, "eventId": event_id}, USER_UPDATE])
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    assert [entry["messages"] for entry in body["events"]] == [2, 1, 0]
    assert body["events"][1]["eventId"] == event_id and body["messages"] == 3
    assert [(event_uuid, kind) for event_uuid, kind, _ in stored_events(app)] == [
        (body["events"][0]["eventId"], "asset.create"), (event_id, "folder.create"),
        (body["events"][2]["eventId"], "user.update")]
    assert stored_counts(app) == (3, 0)
    assert make_owed_messages(app) == 1 and make_owed_messages(app) == 0
    assert stored_counts(app) == (3, 3)
    with app.app_context():
        dates = db.session.execute(select(Message.created_at, Event.created_at).join(Event)).all()
        db.session.remove()
    assert all(message_date >= event_date for message_date, event_date in dates)


def test_the_logs_search_finds_batch_events_by_what_they_are_about(app, client, api_token):
    """Each event of a batch is stored with the asset, folder or user it is about, so the log's search by that
    id finds its messages as it finds a single event's."""
    add_webhook(app, events=["asset.create", "folder.create", "user.update"])
    response = post_event(client, api_token, [ASSET_CREATE, FOLDER_CREATE, USER_UPDATE])
    assert response.status_code == 202, response.get_data(as_text=True)
    make_owed_messages(app)
    with app.app_context():
        subjects = db.session.execute(select(Event.event_type, Event.subject_id).order_by(Event.id)).all()
        found = {text: db.session.scalars(select(Message.event_type).where(
            Message.id.in_(Search.parse(text).message_ids()[0]))).all() for text in ("101", "5", "7")}
        db.session.remove()
    assert subjects == [("asset.create", 101), ("folder.create", 5), ("user.update", 7)]
    assert found == {"101": ["asset.create"], "5": ["folder.create"], "7": ["user.update"]}


def test_one_bad_event_refuses_the_whole_batch_naming_each_by_index(app, client, api_token):
    """With bad events at positions 1 and 3, nothing is stored; the error names the first by index and field and
    lists every bad one in `invalid`."""
    add_webhook(app)
    batch = [ASSET_CREATE, {"type": "asset.create", "userId": 1}, FOLDER_CREATE, {**ASSET_CREATE, "assetId": "x"}]
    response = post_event(client, api_token, batch)
    message = assert_error_with_invalid(response, 422, "[1].assetId")
    assert message.startswith("event 1: assetId is required") and "1 more bad event" in message
    assert response.get_json()["error"]["invalid"] == [
        {"index": 1, "field": "assetId", "message": "assetId is required for this event type"},
        {"index": 3, "field": "assetId", "message": f"assetId must be a positive integer of at most {2**53 - 1}"}]
    assert stored_counts(app) == (0, 0)


def test_a_key_named_twice_in_a_batch_names_each_event_by_index(app, client, api_token):
    """Events 1 and 3 of a batch name a key twice (3 in a nested object): 400 naming event 1 and its key, every such
    event listed in `invalid`, nothing stored; a batch that is not an array of events still names the key alone."""
    add_webhook(app)
    raw = (b'[{"type": "asset.create", "assetId": 1, "userId": 1}, '
           b'{"type": "asset.create", "assetId": 2, "userId": 1, "userId": 2}, '
           b'{"type": "asset.create", "assetId": 3, "userId": 1}, '
           b'{"type": "folder.update", "folderId": 9, "userId": 1, "changed": [{"name": 1, "name": 2}]}]')
    response = post_event(client, api_token, raw=raw)
    message = assert_error_with_invalid(response, 400, "[1].userId")
    assert message.startswith('event 1: the key "userId" appears more than once') and "1 more bad event" in message
    assert [(bad["index"], bad["field"]) for bad in response.get_json()["error"]["invalid"]] == [
        (1, "userId"), (3, "name")]
    assert stored_counts(app) == (0, 0)
    assert_error(post_event(client, api_token, raw=b'{"batch": [{"a": 1, "a": 2}]}'), 400, "a")


def assert_error_with_invalid(response, status: int, field: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"field", "message", "invalid"} and error["field"] == field
    return error["message"]


def test_event_ids_repeat_within_and_across_batches_as_for_single_events(app, client, api_token):
    """The same event twice in a batch is stored once and answered twice; sending the batch again stores nothing
    more and answers the same, before its messages are made and after; an eventId reused for another event (in
    the batch or from before) refuses the batch with 409 at its index."""
    add_webhook(app)
    add_webhook(app, events=["asset.create"])
    event = {**ASSET_CREATE, "eventId": str(uuid.uuid4())}
    first = post_event(client, api_token, [event, event, FOLDER_CREATE])
    assert [entry["eventId"] for entry in first.get_json()["events"][:2]] == [event["eventId"]] * 2
    assert [entry["messages"] for entry in first.get_json()["events"]] == [2, 2, 1]
    assert first.get_json()["messages"] == 3  # the repeated event's messages counted once
    assert stored_counts(app) == (2, 0)
    awaiting = post_event(client, api_token, [event])
    assert awaiting.get_json()["events"] == [first.get_json()["events"][0]]
    assert post_event(client, api_token, event).get_json()["messages"] == 2
    make_owed_messages(app)
    assert stored_counts(app) == (2, 3)
    again = post_event(client, api_token, [event])
    assert again.get_json()["events"] == [first.get_json()["events"][0]]
    assert stored_counts(app) == (2, 3)

    changed = {**event, "assetId": 202}
    assert_error_with_invalid(post_event(client, api_token, [FOLDER_CREATE, changed]), 409, "[1].eventId")
    assert_error_with_invalid(post_event(client, api_token, [changed, {**changed, "assetId": 303}]), 409,
                              "[1].eventId")
    assert stored_counts(app) == (2, 3) and make_owed_messages(app) == 0


def test_a_repeat_counts_the_messages_owed_when_a_replay_made_some_first(app, client, api_token):
    """A replay may make one webhook's message for an event still awaiting its fan-out: a repeat of the batch is
    still answered with both webhooks' messages, and the fan-out makes only the other one."""
    first_webhook = add_webhook(app, events=["asset.create"])
    add_webhook(app, events=["asset.create"])
    event = {**ASSET_CREATE, "eventId": str(uuid.uuid4())}
    assert post_event(client, api_token, [event]).get_json()["messages"] == 2
    with app.app_context():
        event_id = db.session.scalar(select(Event.id))
        now = utcnow()
        db.session.add(Message(message_uuid=str(uuid.uuid4()), webhook_id=first_webhook, event_id=event_id,
                               event_type="asset.create", status=MessageStatus.QUEUED, attempts_made=0,
                               next_attempt_at=now, created_at=now, updated_at=now))
        db.session.commit()
        db.session.remove()
    assert post_event(client, api_token, [event]).get_json()["events"] == [{"eventId": event["eventId"],
                                                                            "messages": 2}]
    assert make_owed_messages(app) == 1 and stored_counts(app) == (1, 2)


def test_a_reimport_in_a_batch_triggers_nothing(app, client, api_token):
    """A reimport inside a batch is answered with no messages and stored nowhere, as alone."""
    add_webhook(app)
    response = post_event(client, api_token, [{**ASSET_CREATE, "source": "reimport"}, ASSET_CREATE])
    assert [entry["messages"] for entry in response.get_json()["events"]] == [0, 1]
    make_owed_messages(app)
    assert stored_counts(app) == (1, 1)


def test_batch_limits(app, client, api_token):
    """500 events are accepted (a body well over one event's 64 KiB); 501 are 413, an empty array 422, and a body
    over 1 MiB 413; nothing of a refused batch is stored."""
    add_webhook(app, events=["user.update"])
    big = [{**USER_UPDATE, "targetUserId": n + 1, "eventId": str(uuid.uuid4()), "eventTime": 1700000000}
           for n in range(500)]
    assert len(json.dumps(big)) > 64 * 1024
    response = post_event(client, api_token, big)
    assert response.status_code == 202 and response.get_json()["messages"] == 500
    make_owed_messages(app)
    assert stored_counts(app) == (500, 500)
    assert_error(post_event(client, api_token, big + [USER_UPDATE]), 413, "body")
    assert_error(post_event(client, api_token, []), 422, "body")
    padded = json.dumps([FOLDER_CREATE]).encode() + b" " * (1024 * 1024)
    assert_error(post_event(client, api_token, raw=padded), 413, "body")
    padded_event = json.dumps(FOLDER_CREATE).encode() + b" " * (1024 * 1024)
    assert assert_error(post_event(client, api_token, raw=padded_event), 413, "body").startswith(
        "the body is larger than 1024 KiB (an event is at most 64 KiB")
    huge = {**USER_UPDATE, "changed": ["email", *(f"field{n:05}" + "x" * 90 for n in range(700))]}
    assert assert_error(post_event(client, api_token, huge), 413, "body") == "the event is larger than 64 KiB"
    message = assert_error_with_invalid(post_event(client, api_token, [FOLDER_CREATE, huge]), 413, "[1].body")
    assert message.startswith("event 1: the event is larger than 64 KiB")
    assert stored_counts(app) == (500, 500)


@pytest.mark.parametrize("repeat", [False, True], ids=["new", "repeat"])
def test_emit_batch_is_the_same_intake_for_host_applications(app, repeat):
    """emit_batch() validates and stores a batch like the API (scope "local"), and repeats answer as repeats."""
    add_webhook(app)
    with app.app_context():
        accepted = emit_batch([{**ASSET_CREATE, "eventId": "6f0c7d2e-3b1a-4c8e-9d6f-2a4b6c8e0f13"}])
        if repeat:
            accepted = emit_batch([{**ASSET_CREATE, "eventId": "6f0c7d2e-3b1a-4c8e-9d6f-2a4b6c8e0f13"}])
        assert [(event.duplicate, event.messages) for event in accepted] == [(repeat, 1)]
        db.session.remove()
    assert stored_counts(app) == (1, 0) and make_owed_messages(app) == 1
    assert stored_counts(app) == (1, 1)


def test_a_refused_batch_leaves_nothing_in_the_callers_session(app):
    """When emit_batch refuses a batch after storing some of it (an eventId reused for a different event is found
    by the store), it rolls back: a caller that commits afterwards stores nothing of the refused batch."""
    add_webhook(app)
    event = {**ASSET_CREATE, "eventId": str(uuid.uuid4())}
    with app.app_context():
        emit_batch([event])
        with pytest.raises(BatchRefused) as refused:
            emit_batch([{**ASSET_CREATE, "assetId": 999}, {**event, "assetId": 202}])
        db.session.commit()
        db.session.remove()
    assert (refused.value.status, refused.value.field) == (409, "[1].eventId")
    assert make_owed_messages(app) == 1
    assert stored_counts(app) == (1, 1)


def run_fan_out_actors(app) -> int:
    """Run the fan-out actor, as the worker would, on every fan-out waiting; how many there were."""
    with app.app_context():
        fan_out_ids = db.session.scalars(select(FanOut.id).order_by(FanOut.id)).all()
        db.session.remove()
        for fan_out_id in fan_out_ids:
            make_fan_out_messages(fan_out_id)
        db.session.remove()
    return len(fan_out_ids)


def test_a_batch_of_repeats_asks_for_no_sending_again(app, client, api_token):
    """As for one event, a batch that only repeats events accepted before stores no new fan-out and does not ask
    for their sending again (its webhook's batch request in Redis is not set anew); a new event in a batch does,
    once the fan-out actor has made its message."""
    webhook_id = add_webhook(app)
    event = {**ASSET_CREATE, "eventId": str(uuid.uuid4())}
    with app.app_context():
        requests = queue_redis()
        key = batch_request_key(webhook_id)
    requests.delete(key)  # an earlier test's webhook of the same id may have left it
    assert post_event(client, api_token, [event]).status_code == 202
    assert not requests.exists(key)
    assert run_fan_out_actors(app) == 1 and requests.exists(key)
    requests.delete(key)
    assert post_event(client, api_token, [event]).status_code == 202
    assert run_fan_out_actors(app) == 0 and not requests.exists(key)
    assert post_event(client, api_token, [event, FOLDER_CREATE]).status_code == 202
    assert run_fan_out_actors(app) == 1 and requests.exists(key)
    assert stored_counts(app) == (2, 2)
