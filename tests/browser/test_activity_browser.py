"""The activity log and the live Webhooks page driven through a real Chromium.

Runs Debian's Chromium (/usr/bin/chromium) through Playwright against the app served by `live_server`,
with a real worker and scheduler where deliveries happen.
"""

import re
from datetime import timedelta

import pytest
import requests
from factories import make_message
from playwright.sync_api import Page, Route, expect

from webhooks_app.extensions import db
from webhooks_app.models import MessageStatus
from webhooks_app.services.webhooks import WebhookFields, create_webhook

BASE = "/system/integrations/api"
WEBHOOKS_PATH = f"{BASE}/webhooks"
EVENT = {"type": "asset.create", "assetId": 101, "userId": 1}
POLL_REQUEST = re.compile(re.escape(f"{BASE}/activity/poll") + r"\b")


def add_webhook(app, name: str, url: str) -> int:
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields(name, url, ("asset.create",), True))
        db.session.commit()
        return webhook.id


def post_event(live_server, api_token: str) -> requests.Response:
    return requests.post(f"{live_server.url}/api/v1/events", json=EVENT,
                         headers={"Authorization": f"Bearer {api_token}"}, timeout=10)


def mark_document(page: Page) -> str:
    """Leave a marker on the loaded document; a reload or navigation would lose it. Returns the URL."""
    page.evaluate("window.__marker = 1")
    return page.url


def assert_same_document(page: Page, url: str) -> None:
    assert page.url == url
    assert page.evaluate("window.__marker") == 1, "the page was reloaded or navigated away"


def log_rows(page: Page):
    return page.locator("#log-rows tr.log-row")


def test_new_message_appears_queued_then_sent_and_expands(app, page: Page, sign_in, live_server, api_token, receiver,
                                                         delivery_processes):
    """With a webhook's activity log open, an event posted to the API appears by itself as a new row
    reading Queued, and the same row turns Sent once the (1.5 s slow) endpoint answers, all without a
    reload or navigation; clicking the row expands the payload (token hidden) and the HTTP 204 attempt.

    The event is posted as the page's next live poll leaves the browser, so that poll reaches the server
    after the message exists and well before the endpoint's answer: Queued is seen first, every run."""
    webhook_id = add_webhook(app, "Slow endpoint", receiver.url("/slow/1.5"))
    log_path = f"{WEBHOOKS_PATH}/{webhook_id}/log"
    sign_in(log_path)
    expect(page.get_by_role("heading", name="Activity log", level=1)).to_be_visible()
    expect(page.locator("#log-rows")).to_contain_text("No messages")
    url = mark_document(page)

    intake: list[requests.Response] = []

    def post_event_as_the_poll_leaves(route: Route) -> None:
        try:
            intake.append(post_event(live_server, api_token))
        finally:
            route.continue_()

    page.route(POLL_REQUEST, post_event_as_the_poll_leaves, times=1)
    rows = log_rows(page)
    expect(rows).to_have_count(1)
    assert intake and intake[0].status_code == 202, intake and intake[0].text
    assert intake[0].json()["messages"] == 1
    row = rows.first
    row_id = row.get_attribute("id")
    same_row = page.locator(f"#{row_id}")
    expect(same_row.locator("span.status")).to_have_text("Queued")
    expect(page.locator("#log-rows")).not_to_contain_text("No messages")

    expect(same_row.locator("span.status")).to_have_text("Sent", timeout=10_000)
    expect(rows).to_have_count(1)
    (delivery,) = receiver.wait_for_count(1)
    assert delivery.json()["event"]["assetId"] == 101
    assert_same_document(page, url)

    toggle = same_row.get_by_role("button", name="asset.create")
    toggle.click()
    details = page.locator(f"#{row_id.replace('message-row-', 'message-details-')}")
    expect(details).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(details.locator("pre.payload")).to_contain_text("(secret hidden)")
    expect(details.locator("pre.payload")).to_contain_text(delivery.json()["messageId"])
    expect(details.locator("table.attempts tbody tr.attempt-row")).to_have_count(1)
    expect(details.locator("table.attempts")).to_contain_text("HTTP 204")
    assert_same_document(page, url)


def test_webhook_disabled_by_failures_turns_off_on_the_open_webhooks_page(app, page: Page, sign_in, live_server,
                                                                        api_token, receiver, delivery_processes):
    """An endpoint answering 500 to all six attempts (1 s ladder) gets its webhook disabled; the open
    Webhooks page, polling every 2 s, flips that row's Status switch to off ("Disabled") by itself,
    without a reload or navigation."""
    add_webhook(app, "Broken endpoint", receiver.url("/status/500"))
    sign_in(WEBHOOKS_PATH)
    switch = page.get_by_role("switch", name="Status of Broken endpoint")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch.locator(".switch-label")).to_have_text("Enabled")
    url = mark_document(page)

    response = post_event(live_server, api_token)
    assert response.status_code == 202, response.text

    expect(switch).to_have_attribute("aria-checked", "false", timeout=40_000)
    expect(switch.locator(".switch-label")).to_have_text("Disabled")
    row = page.locator("#webhooks-table tbody tr").filter(has=switch)
    expect(row).to_have_class(re.compile(r"\bis-disabled\b"))
    expect(row).to_contain_text("Disabled automatically")
    assert len(receiver.wait_for_count(6, "/status/500")) == 6
    assert_same_document(page, url)


@pytest.fixture
def mixed_log(app) -> int:
    """A webhook with 16 messages of all four statuses over the last day, oldest first (ids follow time)."""
    ok = (True, 204, None, "")
    unavailable = (False, 503, "http_status", "<html><body><h1>503 Service Unavailable</h1></body></html>")
    server_error = (False, 500, "http_status", '{"error": "database is locked"}')
    timeout = (False, None, "timeout", None)
    plan = [
        (23, MessageStatus.SENT, [ok]),
        (22, MessageStatus.SENT, [ok]),
        (20, MessageStatus.FAILED, [server_error] * 6),
        (19, MessageStatus.SENT, [unavailable, ok]),
        (17, MessageStatus.SENT, [ok]),
        (15, MessageStatus.SENT, [ok]),
        (12, MessageStatus.SENT, [timeout, ok]),
        (10, MessageStatus.SENT, [ok]),
        (8, MessageStatus.FAILED, [timeout] * 6),
        (6, MessageStatus.SENT, [ok]),
        (4, MessageStatus.SENT, [ok]),
        (3, MessageStatus.SCHEDULED_RETRY, [unavailable, unavailable]),
        (0.5, MessageStatus.SCHEDULED_RETRY, [unavailable]),
        (0.3, MessageStatus.FAILED, [server_error] * 6),
        (0.1, MessageStatus.SENT, [ok]),
        (0.01, MessageStatus.QUEUED, []),
    ]
    with app.app_context():
        webhook_id = add_webhook(app, "Asset audit log", "https://hooks.example.com/netx/assets?source=dam")
        for hours, status, attempts in plan:
            make_message(webhook_id, status, age=timedelta(hours=hours), attempts=attempts)
        db.session.commit()
    return webhook_id


def test_status_filter_is_kept_in_the_url(app, page: Page, sign_in, mixed_log):
    """Choosing "Failed" in the Status select shows only Failed rows and puts ?status=failed in the
    address bar (for sharing); reloading that address keeps the filter and the same rows."""
    log_path = f"{WEBHOOKS_PATH}/{mixed_log}/log"
    sign_in(log_path)
    expect(log_rows(page)).to_have_count(16)
    statuses = log_rows(page).locator("span.status")
    for label in ("Sent", "Queued", "Scheduled retry", "Failed"):
        expect(statuses.filter(has_text=label).first).to_be_visible()

    status_select = page.get_by_label("Status", exact=True)
    expect(status_select).to_have_value("")
    # Moving through the options from the keyboard applies nothing; the Apply button does.
    status_select.focus()
    page.keyboard.press("ArrowDown")
    expect(status_select).to_have_value("sent")
    expect(log_rows(page)).to_have_count(16)
    assert page.url.endswith(log_path)
    status_select.select_option(label="Failed")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(re.escape(log_path) + r"\?status=failed$"))
    expect(statuses).to_have_text(["Failed"] * 3)
    failed_ids = [row.get_attribute("id") for row in log_rows(page).all()]

    page.reload()
    expect(page).to_have_url(re.compile(re.escape(log_path) + r"\?status=failed$"))
    expect(page.get_by_label("Status", exact=True)).to_have_value("failed")
    expect(statuses).to_have_text(["Failed"] * 3)
    assert [row.get_attribute("id") for row in log_rows(page).all()] == failed_ids
