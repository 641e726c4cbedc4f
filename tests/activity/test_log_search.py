"""The log's search and filters: messageId, eventId and subject id, event type, webhook and time range, combined
with Status, kept in the URL and refused with a message beside the field when not understood."""

from datetime import timedelta

import pytest
from factories import make_message, make_webhook
from markup import parse, select_all, select_one, text_of, texts

from webhooks_app.extensions import db
from webhooks_app.models import Event, Message, MessageStatus
from webhooks_app.services.intake import emit_event
from webhooks_app.services.webhooks import WebhookFields, create_webhook

BASE = "/system/integrations/api"
HTMX = {"HX-Request": "true"}


def rows(source) -> list[int]:
    return [int(row["id"].removeprefix("message-row-")) for row in select_all(source, "tr.log-row")]


@pytest.fixture
def world(app):
    """Two webhooks subscribed to everything, and events about asset 101, folder 55 and user 8, one each, plus an
    older Failed message; returns the webhooks' ids and each event's messages."""
    with app.app_context():
        everything = ("asset.create", "folder.update", "user.expire")
        first, _ = create_webhook(WebhookFields("Orders", "https://orders.example.com/x", everything, True))
        second, _ = create_webhook(WebhookFields("Orders", "https://backup.example.org/x", everything, True))
        db.session.commit()
        # Older first: message ids grow with creation time, as the intake writes them.
        old = make_message(first.id, MessageStatus.FAILED, age=timedelta(days=3), event_type="asset.create",
                           attempts=[(False, 500, "http_status", "")])
        db.session.commit()
        accepted = {
            "asset": emit_event({"type": "asset.create", "assetId": 101, "userId": 1}),
            "folder": emit_event({"type": "folder.update", "folderId": 55, "userId": 1}),
            "user": emit_event({"type": "user.expire", "targetUserId": 8, "userId": 1}),
        }
        db.session.commit()
        messages = {kind: sorted(a.message_ids) for kind, a in accepted.items()}
        uuids = {m.id: (m.message_uuid, m.event.event_uuid) for m in db.session.scalars(db.select(Message))}
        return {"first": first.id, "second": second.id, "messages": messages, "old": old, "uuids": uuids}


def test_search_finds_a_message_by_message_id_event_id_or_subject_id(admin_client, world):
    """On All activity, a messageId finds its one message, an eventId every webhook's message of that event, and a
    number the messages of the events about that asset, folder or user."""
    asset_messages = world["messages"]["asset"]
    message_uuid, event_uuid = world["uuids"][asset_messages[0]]
    page = parse(admin_client.get(f"{BASE}/activity?q={message_uuid}"))
    assert rows(page) == [asset_messages[0]]
    assert select_one(page, "input#q")["value"] == message_uuid
    assert rows(admin_client.get(f"{BASE}/activity?q={event_uuid.upper()}")) == sorted(asset_messages, reverse=True)
    assert rows(admin_client.get(f"{BASE}/activity?q=101")) == sorted(asset_messages, reverse=True)
    assert rows(admin_client.get(f"{BASE}/activity?q=55")) == sorted(world["messages"]["folder"], reverse=True)
    assert rows(admin_client.get(f"{BASE}/activity?q=8")) == sorted(world["messages"]["user"], reverse=True)
    assert rows(admin_client.get(f"{BASE}/activity?q=999")) == []


def test_search_on_a_webhooks_log_stays_within_that_webhook(admin_client, world):
    """A webhook's log searched by eventId shows only that webhook's message of the event."""
    _, event_uuid = world["uuids"][world["messages"]["asset"][0]]
    page = admin_client.get(f"{BASE}/webhooks/{world['second']}/log?q={event_uuid}")
    (found,) = rows(page)
    with admin_client.application.app_context():
        assert db.session.get(Message, found).webhook_id == world["second"]


def test_the_search_cap_counts_only_the_messages_the_page_shows(admin_client, app, world, monkeypatch):
    """A search shows at most the newest MAX_FOUND messages it finds among those the page would show: on one
    webhook's log the other webhooks' matches do not use up the cap (here 2, with two events about asset 101)."""
    import webhooks_app.services.log_filters as log_filters

    with app.app_context():
        emit_event({"type": "asset.create", "assetId": 101, "userId": 2})
        db.session.commit()
    monkeypatch.setattr(log_filters, "MAX_FOUND", 2)
    page = admin_client.get(f"{BASE}/webhooks/{world['second']}/log?q=101")
    found = rows(page)
    with app.app_context():
        assert [db.session.get(Message, message_id).webhook_id for message_id in found] == [world["second"]] * 2
    assert world["messages"]["asset"][1] in found
    assert select_all(page, "#log-search-capped") == []  # all the page would show is shown


def test_a_search_that_finds_more_than_it_shows_says_so(admin_client, app, world, monkeypatch):
    """When the cap leaves messages out (more found than MAX_FOUND, or older events past the cap with messages the
    page would show), the log says only the newest are listed; when the older events have none there, it does not."""
    import webhooks_app.services.log_filters as log_filters

    with app.app_context():
        for _ in range(2):
            emit_event({"type": "asset.create", "assetId": 101, "userId": 2})
        db.session.commit()
    monkeypatch.setattr(log_filters, "MAX_FOUND", 2)
    everything = parse(admin_client.get(f"{BASE}/activity?q=101"))  # 3 events, 2 webhooks: 6 messages
    assert len(rows(everything)) == 2
    assert "only the newest 2 are listed" in text_of(select_one(everything, "#log-search-capped"))
    one_webhook = parse(admin_client.get(f"{BASE}/webhooks/{world['second']}/log?q=101", headers=HTMX))
    assert len(rows(one_webhook)) == 2 and select_all(one_webhook, "#log-search-capped")  # the oldest event's
    failed_only = parse(admin_client.get(f"{BASE}/activity?q=101&status=failed"))
    assert rows(failed_only) == [] and select_all(failed_only, "#log-search-capped") == []


def test_event_type_webhook_and_time_range_filters_combine_with_status(admin_client, world):
    """Event type on a webhook's log, the webhook on All activity, and the time range each narrow the rows, and all
    of them combine with Status; the pager's and the poller's URLs keep every filter."""
    first = world["first"]
    log = f"{BASE}/webhooks/{first}/log"
    asset_first = [m for m in world["messages"]["asset"] if m in rows(admin_client.get(log))]
    assert rows(admin_client.get(f"{log}?type=asset.create")) == sorted([*asset_first, world["old"]], reverse=True)
    assert rows(admin_client.get(f"{log}?type=asset.create&range=24h")) == asset_first
    assert rows(admin_client.get(f"{log}?type=asset.create&status=failed")) == [world["old"]]
    assert rows(admin_client.get(f"{log}?type=asset.create&status=failed&range=1h")) == []
    assert rows(admin_client.get(f"{log}?range=7d&status=failed")) == [world["old"]]
    everything = rows(admin_client.get(f"{BASE}/activity?webhook={world['second']}"))
    with admin_client.application.app_context():
        assert {db.session.get(Message, m).webhook_id for m in everything} == {world["second"]}
    assert len(everything) == 3
    page = parse(admin_client.get(f"{BASE}/activity?webhook={first}&type=folder.update&range=1h", headers=HTMX))
    assert select_one(page, "#webhook option[selected]")["value"] == str(first)
    poller = select_one(page, "#log-poller")["hx-get"]
    for part in (f"webhook={first}", "type=folder.update", "all=1"):
        assert part in poller


def test_same_name_webhooks_are_told_apart_on_all_activity(admin_client, world):
    """Two webhooks both called Orders show their #id and endpoint host in All activity's Webhook column and in the
    Webhook filter's options."""
    page = parse(admin_client.get(f"{BASE}/activity"))
    cells = set(texts(page, "td.log-webhook"))
    assert cells == {f"Orders #{world['first']} · orders.example.com",
                     f"Orders #{world['second']} · backup.example.org"}
    options = texts(page, "select#webhook option")
    assert options[1:] == [f"Orders · #{world['first']} · orders.example.com",
                           f"Orders · #{world['second']} · backup.example.org"]


@pytest.mark.parametrize(("query", "field", "message"), [
    ("q=not-a-uuid", "q", "Search for a messageId or eventId"),
    ("q=99999999999999999999", "q", "is not an id"),
    ("type=asset.explode", "type", "“asset.explode” is not an event type"),
    ("range=2y", "range", "“2y” is not a time range"),
    ("webhook=2147483000", "webhook", "“2147483000” is not a webhook"),
])
def test_filters_not_understood_are_explained_beside_their_field(admin_client, world, query, field, message):
    """A search or filter value the log does not understand answers 422 with the message beside its field (marked
    invalid), shows no rows as if it had applied, and is never a 500."""
    response = admin_client.get(f"{BASE}/activity?{query}")
    assert response.status_code == 422
    assert any(message in error for error in texts(response, f"#{field}-errors li"))
    assert select_one(response, f"#{field}")["aria-invalid"] == "true"
    assert rows(response) == []


def test_an_empty_log_offers_a_test_message_and_a_filtered_one_says_nothing_matches(admin_client, app):
    """A webhook's empty log offers its Test button (posting to the Test endpoint into the dialog host); an empty
    result of a search says that nothing matches instead."""
    with app.app_context():
        webhook_id = make_webhook()
        db.session.commit()
    empty = parse(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log"))
    form = select_one(empty, "#log-empty-row form")
    assert form["action"] == f"{BASE}/webhooks/{webhook_id}/test" and form["hx-target"] == "#dialog-host"
    assert texts(form, "button") == ["Send a test message"]
    searched = parse(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log?q=5"))
    assert select_all(searched, "#log-empty-row form") == []
    assert "No messages match" in texts(searched, "#log-empty-row")[0]


def test_new_events_store_their_subject_for_the_search(app_context):
    """The intake stores each event's subject id: what the search finds it by."""
    emit_event({"type": "asset.addToFolder", "assetId": 3, "folderId": 4, "userId": 1})
    emit_event({"type": "user.create", "targetUserId": 12, "userId": 1})
    subjects = db.session.execute(db.select(Event.event_type, Event.subject_id).order_by(Event.id)).all()
    assert subjects == [("asset.addToFolder", 3), ("user.create", 12)]


def test_all_activity_fetches_its_30_day_summary_on_its_own(admin_client, world):
    """All activity's page does not count 30 days of every webhook itself: its summary placeholder fetches the
    counts (and chart) once shown; the fragment has them, and without JavaScript it is a page of its own."""
    page = parse(admin_client.get(f"{BASE}/activity"))
    placeholder = select_one(page, "#log-summary")
    assert placeholder["hx-get"] == f"{BASE}/activity/summary" and placeholder["hx-trigger"] == "load"
    assert select_all(placeholder, "table.counts") == []
    fragment = parse(admin_client.get(f"{BASE}/activity/summary", headers=HTMX))
    assert select_one(fragment, "#log-summary")
    failed_month = select_one(fragment, "table.counts tbody tr:nth-of-type(2) td.status-failed")
    assert text_of(failed_month) == "1"
    assert select_one(admin_client.get(f"{BASE}/activity/summary"), "h1")
