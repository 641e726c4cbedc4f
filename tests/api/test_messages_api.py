"""/api/v1/messages: the activity log's filters, keyset pages with an opaque cursor, and one message's attempts."""

import uuid
from datetime import timedelta

import pytest
from api.helpers import assert_error
from api.management import MESSAGES, WEBHOOKS, call, scoped_token
from factories import make_message, make_webhook
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Event, Message, MessageStatus, utcnow


@pytest.fixture
def token(app) -> str:
    return scoped_token(app, ("webhooks:read",))


def uuids(app, message_ids) -> list[str]:
    with app.app_context():
        rows = db.session.execute(select(Message.id, Message.message_uuid).where(Message.id.in_(message_ids))).all()
        found = {message_id: message_uuid for message_id, message_uuid in rows}
        db.session.remove()
        return [found[message_id] for message_id in message_ids]


@pytest.fixture
def log(app):
    """Two webhooks' messages: statuses, event types and ages differ; ids oldest first."""
    with app.app_context():
        first, second = make_webhook("First"), make_webhook("Second")
        rows = {
            "old_failed": make_message(first, MessageStatus.FAILED, age=timedelta(days=3),
                                       attempts=[(False, 500, "http_status", "<b>no</b>" + "z" * 2000)]),
            "sent": make_message(first, MessageStatus.SENT, age=timedelta(hours=5), attempts=[(True, 204, None, "")]),
            "folder": make_message(second, MessageStatus.QUEUED, age=timedelta(hours=2), event_type="folder.create"),
            "retry": make_message(first, MessageStatus.SCHEDULED_RETRY, age=timedelta(minutes=5),
                                  attempts=[(False, None, "timeout", None)]),
        }
        db.session.commit()
        db.session.remove()
    uuid_of = dict(zip(rows, uuids(app, list(rows.values())), strict=True))
    return {"webhooks": (first, second), "ids": rows, "uuids": uuid_of}


def listed(client, token, path=MESSAGES, **query) -> list[str]:
    response = call(client, "GET", path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""),
                    token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [message["messageId"] for message in response.get_json()["data"]]


def test_the_log_lists_every_webhooks_messages_newest_first(client, token, log):
    """GET /api/v1/messages lists all messages newest first, with their fields."""
    names = ["retry", "folder", "sent", "old_failed"]
    response = call(client, "GET", MESSAGES, token)
    body = response.get_json()
    assert [m["messageId"] for m in body["data"]] == [log["uuids"][name] for name in names]
    assert body["next"] is None
    retry = body["data"][0]
    assert (retry["webhookId"], retry["eventType"], retry["status"], retry["attemptsMade"], retry["test"]) == (
        log["webhooks"][0], "asset.create", "scheduled_retry", 1, False)
    assert retry["createdAt"].endswith("Z") and retry["nextAttemptAt"].endswith("Z")


def test_filters_by_webhook_status_event_type_time_and_search(app, client, token, log):
    """Each filter the log offers narrows the list: a webhook's log, status, event type, a time range (with an
    offset, converted to UTC) and a search by messageId or eventId."""
    first, second = log["webhooks"]
    u = log["uuids"]
    assert listed(client, token, f"{WEBHOOKS}/{first}/messages") == [u["retry"], u["sent"], u["old_failed"]]
    assert listed(client, token, f"{WEBHOOKS}/{second}/messages") == [u["folder"]]
    assert listed(client, token, status="failed") == [u["old_failed"]]
    assert listed(client, token, f"{WEBHOOKS}/{first}/messages", status="queued") == []
    assert listed(client, token, eventType="folder.create") == [u["folder"]]
    since = (utcnow() - timedelta(hours=3)).isoformat() + "Z"
    assert listed(client, token, since=since) == [u["retry"], u["folder"]]
    until = (utcnow() + timedelta(hours=2) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S") + "%2B02:00"
    assert listed(client, token, until=until) == [u["sent"], u["old_failed"]]
    assert listed(client, token, search=u["sent"]) == [u["sent"]]
    with app.app_context():
        event_uuid = db.session.get(Message, log["ids"]["folder"]).event.event_uuid
        db.session.remove()
    assert listed(client, token, search=event_uuid.upper()) == [u["folder"]]
    assert listed(client, token, search=str(uuid.uuid4())) == []


def test_search_by_the_asset_folder_or_user_an_event_is_about_as_the_log_does(app, client, token, log):
    """`search` also takes the id an event is about (assetId, folderId or targetUserId), as the log's search box
    does: the messages of every event about it, newest first, each filter still applying; an id out of range is 422."""
    with app.app_context():
        for name, subject_id in (("old_failed", 4242), ("retry", 4242), ("folder", 77)):
            db.session.get(Message, log["ids"][name]).event.subject_id = subject_id
        db.session.commit()
        db.session.remove()
    u = log["uuids"]
    assert listed(client, token, search="4242") == [u["retry"], u["old_failed"]]
    assert listed(client, token, search="4242", status="failed") == [u["old_failed"]]
    assert listed(client, token, f"{WEBHOOKS}/{log['webhooks'][1]}/messages", search="77") == [u["folder"]]
    assert listed(client, token, search="4243") == []
    assert "is not an id" in assert_error(call(client, "GET", f"{MESSAGES}?search=0", token), 422, "search")


@pytest.mark.parametrize(("query", "field"), [
    ("status=lost", "status"), ("eventType=asset.explode", "eventType"), ("since=yesterday", "since"),
    ("search=not-a-uuid", "search"), ("limit=0", "limit"), ("limit=201", "limit"), ("cursor=abc", "cursor"),
    ("cursor=" + "x" * 65, "cursor"), ("since=0001-01-01T00:00:00%2B14:00", "since"),
], ids=lambda value: value if isinstance(value, str) and "=" not in value else None)
def test_bad_filters_are_422_naming_the_parameter(client, token, log, query, field):
    """An unknown status or event type, a time that is not one, a search that is no UUID or id, a page size out of
    1–200, a cursor this API did not give and a time out of range once in UTC are each 422 naming the parameter."""
    assert_error(call(client, "GET", f"{MESSAGES}?{query}", token), 422, field)


def test_keyset_pages_follow_next_without_gaps_or_repeats(app, client, token):
    """With limit=2, following `next` walks 5 messages newest first in pages of 2, 2 and 1, each once, even when
    newer messages arrive between pages; the last page's next is null."""
    with app.app_context():
        webhook_id = make_webhook()
        ids = [make_message(webhook_id, MessageStatus.SENT, age=timedelta(minutes=10 - n)) for n in range(5)]
        db.session.commit()
        db.session.remove()
    expected = list(reversed(uuids(app, ids)))
    seen, pages, cursor = [], [], None
    while True:
        path = f"{MESSAGES}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = call(client, "GET", path, token).get_json()
        pages.append(len(body["data"]))
        seen += [m["messageId"] for m in body["data"]]
        if len(pages) == 1:
            with app.app_context():
                make_message(webhook_id, MessageStatus.QUEUED)
                db.session.commit()
        cursor = body["next"]
        if cursor is None:
            break
        assert str(ids[0]) not in cursor  # opaque: not the bare id
    assert (seen, pages) == (expected, [2, 2, 1])


def test_a_message_shows_its_payload_masked_and_its_attempts_capped(app, client, token, log):
    """GET /api/v1/messages/{messageId} shows the body as sent with the secret masked and each attempt: status,
    error kind and detail, and at most 1 KiB of the answer, as text."""
    response = call(client, "GET", f"{MESSAGES}/{log['uuids']['old_failed']}", token)
    assert response.status_code == 200
    body = response.get_json()
    assert body["payload"]["messageId"] == log["uuids"]["old_failed"]
    assert body["payload"]["token"].startswith("•") and body["payload"]["subscriptionId"] == log["webhooks"][0]
    [attempt] = body["attempts"]
    assert (attempt["number"], attempt["succeeded"], attempt["statusCode"], attempt["errorKind"]) == (
        1, False, 500, "http_status")
    assert attempt["responseBody"].startswith("<b>no</b>") and len(attempt["responseBody"]) == 1024
    retry = call(client, "GET", f"{MESSAGES}/{log['uuids']['retry']}", token).get_json()
    assert [(a["statusCode"], a["errorKind"]) for a in retry["attempts"]] == [(None, "timeout")]


def test_an_unknown_message_is_404(client, token, log):
    """A messageId not in the log is 404 in the error shape; one that is not a UUID matches no route (404)."""
    assert_error(call(client, "GET", f"{MESSAGES}/{uuid.uuid4()}", token), 404, "messageId")
    assert_error(call(client, "GET", f"{MESSAGES}/{log['ids']['sent']}", token), 404, "path")


def test_a_pruned_event_leaves_no_dangling_fields(app, client, token, log):
    """A message whose webhook was deleted shows webhookId null and is still listed and readable."""
    with app.app_context():
        db.session.execute(Message.__table__.update().values(webhook_id=None))
        db.session.execute(Attempt.__table__.update().values(webhook_id=None))
        db.session.commit()
        assert db.session.scalar(select(db.func.count()).select_from(Event)) == 4
        db.session.remove()
    body = call(client, "GET", f"{MESSAGES}/{log['uuids']['sent']}", token).get_json()
    assert body["webhookId"] is None and body["payload"]["subscriptionId"] is None
    assert len(listed(client, token)) == 4
