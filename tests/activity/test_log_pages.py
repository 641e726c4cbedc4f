"""The activity log pages: columns, filter, keyset pagination, details, escaping and live polling."""

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from factories import make_message, make_webhook
from markup import named, parse, root, select_all, select_one, text_of, texts
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Message, MessageStatus, utcnow
from webhooks_app.services.activity import hourly_outcomes

BASE = "/system/integrations/api"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def one_of_each(app):
    """A webhook with one Sent, one Queued, one Scheduled retry and one Failed message."""
    minute = timedelta(minutes=1)
    with app.app_context():
        webhook_id = make_webhook()
        ids = {
            "sent": make_message(webhook_id, MessageStatus.SENT, age=minute, attempts=[(True, 204, None, "")]),
            "queued": make_message(webhook_id, MessageStatus.QUEUED, age=minute),
            "scheduled_retry": make_message(webhook_id, MessageStatus.SCHEDULED_RETRY, age=minute,
                                            attempts=[(False, 500, "http_status", "oops")]),
            "failed": make_message(webhook_id, MessageStatus.FAILED, age=minute,
                                   attempts=[(False, None, "refused", None)] * 6),
        }
        db.session.commit()
    return webhook_id, ids


def rows(source) -> list[str]:
    """The message ids of the log's rows, in order."""
    return [row["id"].removeprefix("message-row-") for row in select_all(source, "tr.log-row")]


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def test_log_shows_the_documents_columns_newest_first(admin_client, one_of_each):
    """The log lists Event, Created, Status and Updated, newest first, one row per message."""
    webhook_id, ids = one_of_each
    page = parse(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log"))
    assert texts(page, "table.log-table thead th") == ["Event", "Created", "Status", "Updated"]
    assert rows(page) == [str(i) for i in sorted(ids.values(), reverse=True)]
    assert sorted(texts(page, "tr.log-row span.status")) == ["Failed", "Queued", "Scheduled retry", "Sent"]
    assert text_of(select_one(page, "h1")) == "Activity log"
    created = select_all(page, "tr.log-row td:nth-of-type(2) time[data-local]")
    assert len(created) == 4 and all(text_of(time).endswith(" UTC") for time in created)


@pytest.mark.parametrize("status", ["sent", "queued", "scheduled_retry", "failed"])
def test_status_filter_keeps_only_that_status(admin_client, one_of_each, status):
    """The Status filter (kept in the URL) shows only messages with that status."""
    webhook_id, ids = one_of_each
    page = parse(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log?status={status}", headers=HTMX))
    assert root(page)["id"] == "activity-log"
    assert rows(page) == [str(ids[status])]
    assert select_one(page, "select#status option[selected]")["value"] == status


def test_unknown_filter_is_refused_with_a_message(admin_client, one_of_each):
    """A status that does not exist is refused like any form (422), the message beside the Status field naming the
    value, and no rows are shown as if it applied."""
    webhook_id, _ = one_of_each
    response = admin_client.get(f"{BASE}/webhooks/{webhook_id}/log?status=bogus")
    assert response.status_code == 422
    assert texts(response, "#status-errors li") == ["“bogus” is not a status; choose one from the list."]
    assert select_one(response, "select#status")["aria-invalid"] == "true"
    assert rows(response) == []


def test_keyset_pages_cover_every_row_once(app, admin_client):
    """Pages of 50 by message id: Older walks 120 rows without gaps or repeats; Oldest and Newer walk back."""
    with app.app_context():
        webhook_id = make_webhook()
        all_ids = [make_message(webhook_id, MessageStatus.SENT) for _ in range(120)]
        db.session.commit()
    url = f"{BASE}/webhooks/{webhook_id}/log"
    seen, pages, query = [], 0, ""
    while True:
        page = parse(admin_client.get(url + query))
        seen += [int(i) for i in rows(page)]
        pages += 1
        if "Older →" not in texts(page, "nav.pager a"):
            break
        query = "?" + urlsplit(named(page, "nav.pager a", "Older →")["href"]).query
        assert list(query_of(query)) == ["before"]
    assert seen == sorted(all_ids, reverse=True) and pages == 3
    oldest = parse(admin_client.get(url + "?oldest=1"))
    assert [int(i) for i in rows(oldest)] == sorted(all_ids, reverse=True)[70:]
    assert texts(oldest, "nav.pager a") == ["Newest", "← Newer"]
    newer = query_of(named(oldest, "nav.pager a", "← Newer")["href"])["after"]
    middle = admin_client.get(url + f"?after={newer}")
    assert [int(i) for i in rows(middle)] == sorted(all_ids, reverse=True)[20:70]


def test_details_show_masked_payload_attempts_and_escaped_answer(app, admin_client):
    """A row's details show the payload without the secret and every attempt, the answer escaped as text."""
    with app.app_context():
        webhook_id = make_webhook()
        message_id = make_message(webhook_id, MessageStatus.SCHEDULED_RETRY,
                                  attempts=[(False, 500, "http_status", "<script>alert('owned')</script>")])
        db.session.commit()
    details = parse(admin_client.get(f"{BASE}/activity/messages/{message_id}", headers=HTMX))
    assert (root(details).name, root(details)["id"]) == ("tr", f"message-details-{message_id}")
    assert select_all(details, "script") == []
    assert select_one(details, "pre.response-excerpt").get_text() == "<script>alert('owned')</script>"
    assert "HTTP 500" in text_of(select_one(details, "table.attempts")) and "Next attempt" in texts(details, "dt")
    assert "(secret hidden)" in select_one(details, "pre.payload").get_text()


def test_all_activity_lists_every_webhook(app, admin_client):
    """The All activity page lists messages of every webhook with the webhook's name, filter included."""
    with app.app_context():
        first, second = make_webhook("First"), make_webhook("Second")
        a = make_message(first, MessageStatus.FAILED)
        b = make_message(second, MessageStatus.SENT)
        db.session.commit()
    page = parse(admin_client.get(f"{BASE}/activity"))
    assert rows(page) == [str(b), str(a)]
    assert named(page, "tr.log-row a", "First")["href"] == f"{BASE}/webhooks/{first}/log"
    assert named(page, "tr.log-row a", "Second")["href"] == f"{BASE}/webhooks/{second}/log"
    failed = admin_client.get(f"{BASE}/activity?status=failed")
    assert rows(failed) == [str(a)]


def test_summary_counts_the_last_day_and_month(app, admin_client):
    """The summary counts messages per status over 24 hours and 30 days."""
    with app.app_context():
        webhook_id = make_webhook()
        make_message(webhook_id, MessageStatus.SENT, attempts=[(True, 204, None, "")])
        make_message(webhook_id, MessageStatus.SENT, age=timedelta(days=3))
        make_message(webhook_id, MessageStatus.FAILED, age=timedelta(days=10))
        db.session.commit()
    page = parse(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log"))
    counts = {text_of(row.th): texts(row, "td") for row in select_all(page, "table.counts tbody tr")}
    assert counts == {"Last 24 hours": ["1", "0", "0", "0"], "Last 30 days": ["2", "0", "0", "1"]}
    assert select_one(page, ".hourly-chart svg")["aria-label"].endswith(": 1 succeeded, 0 failed")


def test_hourly_outcomes_bucket_attempts_by_hour_and_webhook(app_context):
    """The chart's hours hold each attempt of the last 24 hours once, in its UTC hour, per webhook."""
    now = datetime(2030, 1, 1, 12, 20)
    mine, other = make_webhook("Mine"), make_webhook("Other")
    message_id = make_message(mine, MessageStatus.SENT)
    other_message_id = make_message(other, MessageStatus.SENT)
    for number, (webhook_id, started_at, succeeded) in enumerate([
        (mine, datetime(2030, 1, 1, 12, 5), True), (mine, datetime(2030, 1, 1, 12, 19, 59), False),
        (mine, datetime(2030, 1, 1, 7, 59, 59), True), (mine, datetime(2029, 12, 31, 13, 0), False),
        (mine, datetime(2029, 12, 31, 12, 59, 59), True), (other, datetime(2030, 1, 1, 12, 5), True),
    ], start=1):
        db.session.add(Attempt(message_id=message_id if webhook_id == mine else other_message_id,
                               webhook_id=webhook_id, number=number, started_at=started_at, duration_ms=5,
                               succeeded=succeeded))
    db.session.flush()

    hours = hourly_outcomes(mine, now)
    assert len(hours) == 24
    assert (hours[0].start, hours[-1].start) == (datetime(2029, 12, 31, 13), datetime(2030, 1, 1, 12))
    assert {(hour.start.hour, hour.succeeded, hour.failed) for hour in hours if hour.succeeded or hour.failed} == {
        (12, 1, 1), (7, 1, 0), (13, 0, 1)}
    everyone = hourly_outcomes(None, now)
    assert (everyone[-1].succeeded, everyone[-1].failed) == (2, 1)


def test_poll_with_nothing_in_flight_answers_204(admin_client, one_of_each):
    """A live poll from a page with nothing changed gets 204 and no body."""
    webhook_id, ids = one_of_each
    poll_url = select_one(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log"), "#log-poller")["hx-get"]
    assert set(query_of(poll_url)["pending"].split(",")) == {str(ids["queued"]), str(ids["scheduled_retry"])}
    response = admin_client.get(poll_url, headers=HTMX)
    assert response.status_code == 204 and response.get_data() == b""


def test_poll_redraws_rows_that_changed_and_adds_new_ones(app, admin_client, one_of_each):
    """After a Queued message is Sent and a new one arrives, the poll returns both rows and a new poller."""
    webhook_id, ids = one_of_each
    poll_url = select_one(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log"), "#log-poller")["hx-get"]
    with app.app_context():
        message = db.session.get(Message, ids["queued"])
        message.status = MessageStatus.SENT
        message.updated_at = utcnow() + timedelta(seconds=10)
        new_id = make_message(webhook_id, MessageStatus.QUEUED)
        db.session.commit()
    update = parse(admin_client.get(poll_url, headers=HTMX))
    changed = select_one(update, f"tr#message-row-{ids['queued']}")
    assert changed["hx-swap-oob"] == "true" and text_of(changed.select_one("span.status")) == "Sent"
    assert select_one(update, f"tr#message-row-{new_id}").parent["hx-swap-oob"] == "afterbegin:#log-rows"
    assert select_one(update, "#log-poller")["hx-swap-oob"] == "true"


def test_the_first_new_rows_take_the_place_of_the_empty_log_row(app, admin_client):
    """A log opened empty shows "No messages"; the poll that brings its first rows also deletes that row, and later
    polls (whose page is no longer empty) do not ask again."""
    with app.app_context():
        webhook_id = make_webhook()
        db.session.commit()
    page = parse(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log"))
    assert "No messages" in text_of(select_one(page, "tr#log-empty-row"))
    with app.app_context():
        first = make_message(webhook_id, MessageStatus.QUEUED)
        db.session.commit()
    update = parse(admin_client.get(select_one(page, "#log-poller")["hx-get"], headers=HTMX))
    assert select_one(update, "tr#log-empty-row")["hx-swap-oob"] == "delete"
    assert rows(update) == [str(first)]
    with app.app_context():
        second = make_message(webhook_id, MessageStatus.QUEUED)
        db.session.commit()
    later = parse(admin_client.get(select_one(update, "#log-poller")["hx-get"], headers=HTMX))
    assert select_one(later, f"tr#message-row-{second}").parent["hx-swap-oob"] == "afterbegin:#log-rows"
    assert select_all(later, "#log-empty-row") == []


def test_log_pages_are_for_administrators(app, client):
    """Anonymous visitors are sent to sign-in from every log page."""
    for path in (f"{BASE}/activity", f"{BASE}/webhooks/1/log", f"{BASE}/activity/messages/1", f"{BASE}/activity/poll"):
        assert client.get(path).status_code == 302


def test_no_message_is_stored_twice_for_test(app):
    """Sanity: the helper builds distinct messages."""
    with app.app_context():
        webhook_id = make_webhook()
        make_message(webhook_id, MessageStatus.SENT)
        make_message(webhook_id, MessageStatus.SENT)
        db.session.commit()
        assert len(list(db.session.scalars(select(Message.id)))) == 2


@pytest.mark.parametrize(("path", "status"), [
    ("/activity?before=9223372036854775808", 400),
    ("/activity?after=2147483648", 400),
    ("/activity/poll?pending=1,99999999999999999999", 400),
    ("/activity/poll?pending=1,%C2%B2", 400),
    ("/activity/poll?webhook=99999999999999999999", 400),
    ("/activity/poll?newest=-1", 400),
    ("/activity/messages/99999999999999999999", 404),
    ("/activity/messages/2147483648", 404),
    ("/webhooks/99999999999999999999/log", 404),
])
def test_out_of_range_ids_are_404_and_malformed_parameters_400(admin_client, one_of_each, path, status):
    """An id no row can have is 404 and a number or id list out of range is 400, with a message, never a 500
    (on SQLite such ids overflowed; on PostgreSQL anything over 2^31 - 1 did)."""
    response = admin_client.get(BASE + path)
    assert response.status_code == status
    assert "The log address is not understood" in text_of(response) or status == 404
