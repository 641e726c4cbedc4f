"""The Content-Security-Policy, as a real Chromium enforces it: every page and dialog works with no violation.

Runs Debian's Chromium (/usr/bin/chromium) through Playwright against the app served by `live_server`.
Any CSP violation, htmx refusing to evaluate code, console error or uncaught error fails the test.
"""

import re
from datetime import timedelta

import pytest
from factories import make_message
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from tests.browser.conftest import WAIT_MS
from tests.conftest import wait_for_script
from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus, Webhook, utcnow
from webhooks_app.services.webhooks import WebhookFields, create_webhook

BASE = "/system/integrations/api"
WEBHOOKS_PATH = f"{BASE}/webhooks"
REPORT_PROBLEMS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " blocked " + (event.blockedURI || "inline code"));
});
document.addEventListener("htmx:evalDisallowedError", function () { console.error("htmx wanted to evaluate code"); });
"""
NOT_FOUND_RESOURCE = "Failed to load resource: the server responded with a status of 404 (NOT FOUND)"


class Watcher:
    """Collects what the browser reports: console errors, uncaught errors, and documents without the policy."""

    def __init__(self):
        self.problems: list[str] = []
        self.documents: list[str] = []
        self.expected: set[str] = set()

    def console(self, message) -> None:
        if message.type == "error" and message.text not in self.expected:
            self.problems.append(message.text)

    def response(self, response) -> None:
        if response.request.resource_type != "document":
            return
        self.documents.append(response.url)
        policy = response.headers.get("content-security-policy", "")
        if "script-src 'self'" not in policy or "frame-ancestors 'none'" not in policy or "unsafe" in policy:
            self.problems.append(f"{response.url}: Content-Security-Policy {policy!r}")
        if response.headers.get("x-frame-options") != "DENY":
            self.problems.append(f"{response.url}: no X-Frame-Options DENY")


@pytest.fixture
def watcher():
    return Watcher()


@pytest.fixture
def page(browser: Browser, live_server, watcher):
    """A fresh context that reports CSP violations and refused evaluations to the console, which is watched."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900},
                                  permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(REPORT_PROBLEMS)
    tab = context.new_page()
    tab.on("console", watcher.console)
    tab.on("pageerror", lambda error: watcher.problems.append(f"uncaught: {error}"))
    tab.on("response", watcher.response)
    yield tab
    context.close()
    assert watcher.problems == []




def open_menu(page: Page, name: str):
    """Open a row's ⋯ action menu; returns the menu (a popover)."""
    page.get_by_role("button", name=f"Actions for {name}", exact=True).click()
    menu = page.locator("#webhooks-table tbody tr").filter(has=page.get_by_role("link", name=name)).locator(".menu")
    expect(menu).to_be_visible()
    return menu


def open_menu_item(page: Page, name: str, item: str) -> None:
    open_menu(page, name).get_by_role("link", name=item, exact=True).click()


def close_dialog(page: Page, title: str, closer: str = "Cancel") -> None:
    dialog = page.get_by_role("dialog", name=title)
    expect(dialog).to_be_visible()
    dialog.get_by_role("link", name=closer).click()
    expect(dialog).to_have_count(0)


def test_every_page_and_dialog_runs_under_the_policy(app, page: Page, sign_in, watcher):
    """Sign-in, the Webhooks page with its Add, secret, Edit, Reset secret, Delete and Test dialogs and action
    menu, the activity log (details opened and closed, the Status filter), All activity, the API tokens page
    with its Revoke dialog, the API reference and an error page all work with no CSP violation and no console
    error."""
    sign_in(WEBHOOKS_PATH)
    page.get_by_role("link", name="Add webhook").click()
    dialog = page.get_by_role("dialog", name="Add webhook")
    dialog.get_by_label("Name").fill("Policed")
    dialog.get_by_label("Endpoint URL").fill("https://127.0.0.1:9/hook")
    dialog.get_by_label("asset.create", exact=True).check()
    dialog.get_by_role("button", name="Create").click()
    secret = page.get_by_role("dialog", name="Webhook created")
    secret.locator(".copy-row").first.get_by_role("button", name="Copy").click()
    expect(secret.get_by_role("button", name="Copied")).to_be_visible()
    close_dialog(page, "Webhook created", "Done")

    page.locator("#webhooks-table tbody tr").first.get_by_role("cell").nth(1).click()
    close_dialog(page, "Edit webhook")
    open_menu_item(page, "Policed", "Reset secret")
    close_dialog(page, "Reset secret?")
    open_menu_item(page, "Policed", "Delete")
    close_dialog(page, "Delete webhook?")
    open_menu(page, "Policed").get_by_role("button", name="Test").click()
    close_dialog(page, "Test Policed", "Done")

    with app.app_context():
        webhook_id = db.session.scalar(db.select(Webhook.id))
        make_message(webhook_id, MessageStatus.FAILED, age=timedelta(minutes=3),
                     attempts=[(False, 500, "http_status", "<script>alert(1)</script>")])
        db.session.commit()
    open_menu(page, "Policed").get_by_role("link", name="Activity log").click()
    expect(page.get_by_role("heading", name="Activity log", level=1)).to_be_visible()
    row = page.locator("#log-rows tr.log-row").first
    row.get_by_role("button", name="asset.create").click()
    details = page.locator("tr.details-row[data-loaded]")
    expect(details).to_be_visible()
    expect(details.locator("pre.response-excerpt")).to_have_text("<script>alert(1)</script>")
    row.get_by_role("button", name="asset.create").click()
    expect(details).to_be_hidden()
    page.get_by_label("Status", exact=True).select_option(label="Failed")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"status=failed$"))
    page.get_by_role("link", name="All activity").click()
    expect(page.get_by_role("heading", name="All activity", level=1)).to_be_visible()

    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Token name").fill("Policed system")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_label("API token")).to_have_value(re.compile(r"^whk_"))
    page.get_by_role("link", name="Revoke Policed system").click()
    close_dialog(page, "Revoke API token?")
    page.get_by_role("link", name="Revoke Policed system").click()
    page.get_by_role("dialog", name="Revoke API token?").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("#api-tokens tbody tr").first.get_by_role("cell").nth(5)).to_have_text("Revoked")
    expect(page.get_by_role("status")).to_have_text("API token “Policed system” revoked.")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API reference").click()
    expect(page.get_by_role("heading", name="API reference", level=1)).to_be_visible()
    page.get_by_role("link", name="POST /api/v1/webhooks", exact=True).click()
    expect(page.locator("#create_webhook")).to_be_in_viewport()

    watcher.expected.add(NOT_FOUND_RESOURCE)
    assert page.goto(f"{BASE}/webhooks/2147483648/edit").status == 404
    expect(page.get_by_role("heading", name="404 · Not Found")).to_be_visible()
    assert len(watcher.documents) >= 5


def test_live_polling_still_updates_the_open_pages(app, page: Page, sign_in):
    """With eval forbidden, the 2-second polls still run: a message turning Sent in the database shows on the
    open log, and a webhook disabled in the database turns its switch off on the open Webhooks page."""
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Watched", "https://hooks.example.com/x", ("asset.create",), True))
        db.session.flush()
        message_id = make_message(webhook.id, MessageStatus.QUEUED)
        db.session.commit()
        webhook_id = webhook.id
    sign_in(WEBHOOKS_PATH)
    page.goto(f"{WEBHOOKS_PATH}/{webhook_id}/log")
    status = page.locator(f"#message-row-{message_id} span.status")
    expect(status).to_have_text("Queued")
    with app.app_context():
        db.session.execute(update(Message).where(Message.id == message_id)
                           .values(status=MessageStatus.SENT, updated_at=utcnow() + timedelta(seconds=1)))
        db.session.commit()
    expect(status).to_have_text("Sent", timeout=10_000)

    page.goto(WEBHOOKS_PATH)
    switch = page.get_by_role("switch", name="Status of Watched")
    expect(switch).to_have_attribute("aria-checked", "true")
    with app.app_context():
        db.session.execute(update(Webhook).where(Webhook.id == webhook_id)
                           .values(enabled=False, updated_at=utcnow() + timedelta(seconds=1)))
        db.session.commit()
    expect(switch).to_have_attribute("aria-checked", "false", timeout=10_000)


def test_live_polls_pause_while_a_dialog_is_open(app, page: Page, sign_in):
    """While a dialog is open the Webhooks page's live poll skips its turns (cancelled in htmx:confirm, not by an
    hx-trigger filter), and it resumes once the dialog is closed."""
    with app.app_context():
        create_webhook(WebhookFields("Paused", "https://hooks.example.com/x", ("asset.create",), True))
        db.session.commit()
    sign_in(WEBHOOKS_PATH)
    page.evaluate("""() => {
        window.polls = {sent: 0, skipped: 0};
        document.addEventListener("htmx:confirm", (event) => {
            if (event.detail.elt.id === "webhooks-live") window.polls[event.defaultPrevented ? "skipped" : "sent"] += 1;
        });
    }""")
    wait_for_script(page, "window.polls.sent >= 1")
    page.get_by_role("link", name="Add webhook").click()
    expect(page.get_by_role("dialog", name="Add webhook")).to_be_visible()
    sent_while_open = page.evaluate("window.polls.sent")
    wait_for_script(page, "window.polls.skipped >= 2")
    assert page.evaluate("window.polls.sent") == sent_while_open
    close_dialog(page, "Add webhook")
    wait_for_script(page, f"window.polls.sent > {sent_while_open}")


def test_the_test_button_shows_the_workers_answer_in_both_places(app, page: Page, sign_in, receiver,
                                                                  delivery_processes):
    """Test in the create dialog's secret view and in the row's action menu: the dialog says the message is
    queued, then (the worker having sent it) shows the endpoint's answer, polled from the database."""
    sign_in(WEBHOOKS_PATH)
    page.get_by_role("link", name="Add webhook").click()
    dialog = page.get_by_role("dialog", name="Add webhook")
    dialog.get_by_label("Name").fill("Tested")
    dialog.get_by_label("Endpoint URL").fill(receiver.url("/ok"))
    dialog.get_by_label("asset.create", exact=True).check()
    dialog.get_by_role("button", name="Create").click()
    secret = page.get_by_role("dialog", name="Webhook created")
    secret.get_by_role("button", name="Test").click()
    expect(secret.get_by_role("status").filter(has_text="Delivered.")).to_contain_text(
        re.compile(r"answered HTTP 204 in \d+ ms"), timeout=15_000)
    close_dialog(page, "Webhook created", "Done")

    open_menu(page, "Tested").get_by_role("button", name="Test").click()
    test_dialog = page.get_by_role("dialog", name="Test Tested")
    expect(test_dialog).to_be_visible()
    expect(test_dialog.get_by_role("status").filter(has_text="Delivered.")).to_be_visible(timeout=15_000)
    close_dialog(page, "Test Tested", "Done")
    assert len(receiver.wait_for_count(2)) == 2
