"""The Redis alert on every webhook page, with a link to the Installing Redis help and an optional support line."""

from datetime import timedelta

import pytest
from conftest import free_port
from factories import make_message, make_webhook
from markup import parse, select_all, select_one, text_of

from webhooks_app.extensions import db
from webhooks_app.models import MessageStatus

BASE = "/system/integrations/api"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def redis_down(app, redis_url):
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    yield
    app.config["REDIS_URL"] = redis_url


@pytest.fixture
def webhook_id(app) -> int:
    with app.app_context():
        webhook_id = make_webhook()
        make_message(webhook_id, MessageStatus.QUEUED, age=timedelta(minutes=1))  # older than the poll's margin
        db.session.commit()
    return webhook_id


def test_every_webhook_page_shows_the_alert_with_the_installing_redis_help(app, admin_client, redis_down, webhook_id):
    """With Redis down, the Webhooks page, both log pages and the API tokens page say that messages wait as Queued
    and link to the Installing Redis help, whose page is the README's section."""
    for path in ("/webhooks", f"/webhooks/{webhook_id}/log", "/activity", "/tokens"):
        alert = select_one(admin_client.get(BASE + path), "#redis-alert [role=alert]")
        assert "Redis unavailable." in text_of(alert) and "Queued" in text_of(alert), path
        link = select_one(alert, "a")
        assert (text_of(link), link["href"]) == ("Installing Redis", f"{BASE}/webhooks/help/redis")
    help_page = parse(admin_client.get(f"{BASE}/webhooks/help/redis"))
    assert text_of(select_one(help_page, "h1")) == "Installing Redis"
    assert any("redis-cli -h 127.0.0.1 ping" in text_of(item) for item in select_all(help_page, "li"))


@pytest.mark.parametrize(("contact", "href"), [
    ("support@example.com", "mailto:support@example.com"),
    ("https://help.example.com/tickets", "https://help.example.com/tickets"),
    ("Call +1 555 0100", None),
])
def test_a_support_contact_is_offered_when_configured(app, admin_client, redis_down, contact, href):
    """WEBHOOKS_SUPPORT_CONTACT adds a support line to the alert: an email or URL as a link, other text as text."""
    app.config["WEBHOOKS_SUPPORT_CONTACT"] = contact
    try:
        alert = select_one(admin_client.get(f"{BASE}/webhooks"), "#redis-alert [role=alert]")
    finally:
        app.config["WEBHOOKS_SUPPORT_CONTACT"] = None
    assert f"Contact support: {contact}" in text_of(alert)
    links = [a["href"] for a in select_all(alert, "a")]
    assert links == [f"{BASE}/webhooks/help/redis"] + ([href] if href else [])


def test_no_support_line_without_the_setting(admin_client, redis_down):
    """Without WEBHOOKS_SUPPORT_CONTACT the alert has no support line."""
    assert "Contact support" not in text_of(select_one(admin_client.get(f"{BASE}/webhooks"), "#redis-alert"))


def test_the_log_poll_brings_and_clears_the_alert(app, admin_client, redis_url, webhook_id):
    """An open log page learns from its poll that Redis went away (the alert arrives out of band) and that it came
    back (the alert is cleared), without anything else changing."""
    poller = select_one(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log"), "#log-poller")["hx-get"]
    assert admin_client.get(poller, headers=HTMX).status_code == 204
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    try:
        down = parse(admin_client.get(poller, headers=HTMX))
    finally:
        app.config["REDIS_URL"] = redis_url
    alert = select_one(down, "#redis-alert")
    assert alert["hx-swap-oob"] == "true" and "Redis unavailable." in text_of(alert)
    poller_down = select_one(down, "#log-poller")["hx-get"]
    up = parse(admin_client.get(poller_down, headers=HTMX))
    assert text_of(select_one(up, "#redis-alert")) == ""


def test_the_log_poll_redraws_the_counts_when_a_message_arrives(app, admin_client, webhook_id):
    """The log's poll sends the summary (24 h / 30 d counts and the chart) again once a new message exists."""
    poller = select_one(admin_client.get(f"{BASE}/webhooks/{webhook_id}/log"), "#log-poller")["hx-get"]
    with app.app_context():
        make_message(webhook_id, MessageStatus.SENT, attempts=[(True, 204, None, "")])
        db.session.commit()
    answer = parse(admin_client.get(poller, headers=HTMX))
    summary = select_one(answer, "#log-summary")
    assert summary["hx-swap-oob"] == "true"
    sent_today = select_one(summary, "tbody tr:first-child td.status-sent")
    assert text_of(sent_today) == "1"
