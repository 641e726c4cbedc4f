"""eventId is an idempotency key per sender: a token, the local intake (CLI, emit_event) or the Test button."""

import json
import threading
import time

import pytest
from api.helpers import (
    ASSET_CREATE,
    EVENT_ID,
    add_webhook,
    assert_error,
    new_token,
    post_event,
    stored_counts,
    stored_events,
)
from conftest import wait_for
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Event
from webhooks_app.services.intake import IntakeError, emit_event
from webhooks_app.services.test_messages import create_test_message

FOLDER_UPDATE = {"type": "folder.update", "folderId": 9, "userId": 1, "changed": ["name", "path"],
                 "eventTime": 1_700_000_000, "eventId": EVENT_ID}


def test_another_tokens_event_with_the_same_event_id_is_stored_as_its_own(app, client, api_token):
    """Token B's different event with token A's eventId is accepted as new, not answered with A's result."""
    add_webhook(app, events=("asset.create", "folder.create"))
    other_token = new_token(app, "other system")
    first = post_event(client, api_token, {**ASSET_CREATE, "eventId": EVENT_ID})
    second = post_event(client, other_token, {"type": "folder.create", "folderId": 8, "userId": 2,
                                              "eventId": EVENT_ID})
    assert first.status_code == second.status_code == 202, second.get_data(as_text=True)
    assert first.get_json() == second.get_json() == {"eventId": EVENT_ID, "messages": 1}
    assert [(event_uuid, event_type) for event_uuid, event_type, _ in stored_events(app)] == [
        (EVENT_ID, "asset.create"), (EVENT_ID, "folder.create")]
    assert stored_counts(app) == (2, 2)


def test_a_repeat_with_a_different_body_gets_409_naming_event_id(app, client, api_token):
    """The same token reusing an eventId for a different event gets 409 naming eventId, and nothing is stored."""
    add_webhook(app, events=("asset.create",))
    assert post_event(client, api_token, {**ASSET_CREATE, "eventId": EVENT_ID}).status_code == 202
    response = post_event(client, api_token, {**ASSET_CREATE, "assetId": 102, "eventId": EVENT_ID})
    message = assert_error(response, 409, "eventId")
    assert EVENT_ID in message
    assert stored_counts(app) == (1, 1)
    [(_, _, payload)] = stored_events(app)
    assert payload["assetId"] == 101


@pytest.mark.parametrize("changed", [
    pytest.param({"assetId": 102}, id="another-subject"),
    pytest.param({"userId": 2}, id="another-user"),
    pytest.param({"type": "asset.delete"}, id="another-type"),
    pytest.param({"eventTime": 1_700_000_001}, id="another-event-time"),
    pytest.param({"source": "reimport"}, id="not-triggering"),
])
def test_every_field_of_the_event_counts_for_sameness(app, client, api_token, changed):
    """A repeat differing in any one field, including one that would trigger nothing, is a 409."""
    add_webhook(app)
    first = {**ASSET_CREATE, "eventTime": 1_700_000_000, "eventId": EVENT_ID}
    assert post_event(client, api_token, first).status_code == 202
    assert_error(post_event(client, api_token, {**first, **changed}), 409, "eventId")
    assert stored_counts(app) == (1, 1)


def test_the_same_event_written_differently_is_a_repeat(app, client, api_token):
    """Key order, whitespace, the eventId's letter case and the order of `changed` do not make a repeat differ."""
    add_webhook(app, events=("folder.update",))
    first = post_event(client, api_token, FOLDER_UPDATE)
    rewritten = ('{ "changed" : [ "path", "name", "path" ], "eventId": "' + EVENT_ID.upper() + '",\n'
                 '  "userId": 1, "eventTime": 1700000000, "folderId": 9, "type": "folder.update" }').encode()
    again = post_event(client, api_token, raw=rewritten)
    assert first.status_code == again.status_code == 202, again.get_data(as_text=True)
    assert first.get_json() == again.get_json() == {"eventId": EVENT_ID, "messages": 1}
    assert stored_counts(app) == (1, 1)


def test_an_upload_named_or_left_to_the_default_is_the_same_event(app, client, api_token):
    """asset.create with `source: "upload"` repeats the same event sent without source (its default)."""
    add_webhook(app, events=("asset.create",))
    first = post_event(client, api_token, {**ASSET_CREATE, "eventId": EVENT_ID})
    again = post_event(client, api_token, {**ASSET_CREATE, "eventId": EVENT_ID, "source": "upload"})
    assert first.get_json() == again.get_json() == {"eventId": EVENT_ID, "messages": 1}
    assert stored_counts(app) == (1, 1)


def next_second() -> int:
    """Wait until the epoch second changes; return the new one."""
    now = int(time.time())
    return wait_for(lambda: int(time.time()) > now and int(time.time()), message="the next second")


def test_a_repeat_without_event_time_matches_a_first_sent_without_it(app, client, api_token):
    """An omitted eventTime means "when first accepted": a later repeat that omits it too is the same event,
    answered with the first result and the first eventTime kept; one that names an eventTime differs (409)."""
    add_webhook(app, events=("asset.create",))
    event = {**ASSET_CREATE, "eventId": EVENT_ID}
    first = post_event(client, api_token, event)
    [(_, _, stored)] = stored_events(app)
    next_second()
    again = post_event(client, api_token, event)
    assert first.status_code == again.status_code == 202, again.get_data(as_text=True)
    assert again.get_json() == {"eventId": EVENT_ID, "messages": 1}
    assert stored_events(app) == [(EVENT_ID, "asset.create", stored)]
    named = post_event(client, api_token, {**event, "eventTime": stored["eventTime"]})
    assert_error(named, 409, "eventId")
    assert stored_counts(app) == (1, 1)


def test_a_non_triggering_event_reusing_a_stored_event_id_gets_409(app, client, api_token):
    """A reimport with the eventId of a stored upload from the same token is a different event: 409."""
    add_webhook(app, events=("asset.create",))
    assert post_event(client, api_token, {**ASSET_CREATE, "eventId": EVENT_ID}).status_code == 202
    response = post_event(client, api_token, {**ASSET_CREATE, "eventId": EVENT_ID, "source": "resync"})
    assert_error(response, 409, "eventId")
    other = post_event(client, new_token(app, "other"), {**ASSET_CREATE, "eventId": EVENT_ID, "source": "resync"})
    assert other.get_json() == {"eventId": EVENT_ID, "messages": 0}
    assert stored_counts(app) == (1, 1)


def test_local_events_have_their_own_scope(app, client, api_token):
    """emit_event (the CLI and host apps) neither collides with a token's eventId nor accepts a different repeat."""
    add_webhook(app, events=("asset.create", "folder.create"))
    assert post_event(client, api_token, {**ASSET_CREATE, "eventId": EVENT_ID}).status_code == 202
    with app.app_context():
        local = emit_event({"type": "folder.create", "folderId": 8, "userId": 1, "eventId": EVENT_ID})
        assert not local.duplicate and len(local.message_ids) == 1
        with pytest.raises(IntakeError) as raised:
            emit_event({"type": "folder.create", "folderId": 9, "userId": 1, "eventId": EVENT_ID})
        assert (raised.value.status, raised.value.field) == (409, "eventId")
        db.session.rollback()
        db.session.remove()
    assert stored_counts(app) == (2, 2)


def test_the_emit_command_reports_a_reused_event_id(app):
    """`emit` with an eventId already used for another local event exits non-zero naming eventId."""
    add_webhook(app, events=("asset.create",))
    runner = app.test_cli_runner()
    args = ["emit", "asset.create", "--asset-id", "101", "--user-id", "1", "--event-id", EVENT_ID]
    assert runner.invoke(args=args).exit_code == 0
    reused = runner.invoke(args=[*args[:3], "102", *args[4:]])
    assert reused.exit_code != 0
    assert "eventId" in reused.output
    assert stored_counts(app) == (1, 1)


def test_a_test_messages_event_id_is_not_a_local_events(app):
    """The Test button's events have their own scope: emitting an event with a test event's eventId stores it."""
    webhook_id = add_webhook(app, events=("asset.create",))
    with app.app_context():
        create_test_message(webhook_id, user_id=1)
        db.session.commit()
        test_event_id = db.session.scalars(select(Event.event_uuid)).one()
        accepted = emit_event({**ASSET_CREATE, "eventId": test_event_id})
        assert not accepted.duplicate and len(accepted.message_ids) == 1
        db.session.remove()
    assert stored_counts(app) == (2, 2)


def race(app, requests: list[tuple[str, dict]]) -> list[tuple[int, dict]]:
    """POST every (token, event) at the same moment from its own thread; returns (status, body) in that order."""
    start = threading.Barrier(len(requests))
    answers: list = [None] * len(requests)

    def post(number: int, token: str, event: dict) -> None:
        client = app.test_client()
        start.wait(timeout=10)
        response = post_event(client, token, event)
        answers[number] = (response.status_code, json.loads(response.get_data()))

    racers = [threading.Thread(target=post, args=(number, *request)) for number, request in enumerate(requests)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=30)
    return answers


def test_two_different_events_racing_with_one_event_id_store_one_and_refuse_the_other(app, api_token):
    """Two different events sent at once with one token and eventId: one 202, the other 409, one event stored."""
    add_webhook(app, events=("asset.create",))
    answers = race(app, [(api_token, {**ASSET_CREATE, "eventId": EVENT_ID}),
                         (api_token, {**ASSET_CREATE, "assetId": 102, "eventId": EVENT_ID})])
    assert sorted(status for status, _ in answers) == [202, 409], answers
    accepted = next(body for status, body in answers if status == 202)
    assert accepted == {"eventId": EVENT_ID, "messages": 1}
    assert stored_counts(app) == (1, 1)


def test_two_tokens_racing_with_one_event_id_store_two_events(app, api_token):
    """Two tokens sending the same eventId at once both get a new event of their own."""
    add_webhook(app, events=("asset.create",))
    other_token = new_token(app, "other system")
    event = {**ASSET_CREATE, "eventId": EVENT_ID}
    answers = race(app, [(api_token, event), (other_token, event)])
    assert answers == [(202, {"eventId": EVENT_ID, "messages": 1})] * 2
    assert stored_counts(app) == (2, 2)
