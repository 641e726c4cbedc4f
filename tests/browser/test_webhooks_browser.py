"""The Webhooks page driven through a real Chromium: sign-in, dialogs, toggles, menus and HTMX errors.

Runs Debian's Chromium (/usr/bin/chromium) through Playwright against the app served by `live_server`.
The README's screenshots are taken by test_layout_browser.py.
"""

import base64
import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import WAIT_MS
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, CHROMIUM, CHROMIUM_MISSING, make_user, wait_for_script
from webhooks_app.extensions import db
from webhooks_app.services import webhooks as webhook_service

WEBHOOKS_PATH = "/system/integrations/api/webhooks"
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{27}")
HOOK_URL = "https://127.0.0.1:9/hook"


def test_debian_chromium_is_installed():
    """The browser tests need Debian's Chromium at /usr/bin/chromium: its absence fails the run
    (here as a FAILED test, and as an error in every browser test), it never skips them."""
    if not CHROMIUM.exists():
        pytest.fail(CHROMIUM_MISSING)


@pytest.fixture
def signed_in_page(sign_in) -> Page:
    """An administrator signed in through the real sign-in form, looking at the Webhooks page."""
    page = sign_in(WEBHOOKS_PATH)
    expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
    return page


def row_of(page: Page, name: str):
    """The table row whose name link reads exactly `name`."""
    return page.locator("#webhooks-table tbody tr").filter(has=page.get_by_role("link", name=name, exact=True))


def dialog_named(page: Page, title: str):
    return page.get_by_role("dialog", name=title)


def add_webhook(page: Page, name: str, url: str, events: list[str], enabled: bool = True) -> str:
    """Create a webhook through the Add dialog; returns the secret shown once, after closing it."""
    page.get_by_role("link", name="Add webhook").click()
    dialog = dialog_named(page, "Add webhook")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Endpoint URL").fill(url)
    for event in events:
        dialog.get_by_label(event, exact=True).check()
    if not enabled:
        dialog.get_by_label("Enabled", exact=True).uncheck()
    dialog.get_by_role("button", name="Create").click()
    secret_dialog = dialog_named(page, "Webhook created")
    secret = secret_dialog.get_by_label("Secret", exact=True)
    expect(secret).to_have_value(SECRET_PATTERN)
    value = secret.input_value()
    secret_dialog.get_by_role("link", name="Done").click()
    expect(secret_dialog).to_have_count(0)
    return value


def menu_of(page: Page, name: str):
    """The row's action menu (a popover: hidden until its ⋯ button opens it)."""
    return row_of(page, name).locator(".menu")


def open_menu_item(page: Page, name: str, item: str) -> None:
    """Open the row's ⋯ action menu and choose `item` (the menu closes as the item's dialog opens)."""
    page.get_by_role("button", name=f"Actions for {name}", exact=True).click()
    menu = menu_of(page, name)
    expect(menu).to_be_visible()
    menu.get_by_role("link", name=item, exact=True).click()


def test_add_edit_toggle_reset_secret_and_delete_through_the_ui(signed_in_page: Page):
    """An administrator signs in and, through the real page and its HTMX dialogs, adds a webhook
    (seeing its 27-character secret once and copying it), edits it from a row click, toggles its
    Status switch with the keyboard, resets its secret (a different one is shown), and deletes it
    after a cancelled first attempt, ending on the empty state."""
    page = signed_in_page
    expect(page.get_by_role("heading", name="No webhooks yet")).to_be_visible()

    # Add: the dialog, its fields, events by label, Enabled checked by default.
    page.get_by_role("link", name="Add webhook").click()
    dialog = dialog_named(page, "Add webhook")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name")).to_be_focused()
    dialog.get_by_label("Name").fill("Order sync")
    dialog.get_by_label("Endpoint URL").fill(HOOK_URL)
    dialog.get_by_label("asset.create", exact=True).check()
    dialog.get_by_label("folder.update", exact=True).check()
    expect(dialog.get_by_label("Enabled", exact=True)).to_be_checked()
    dialog.get_by_role("button", name="Create").click()

    # The secret, shown once: 27 url-safe characters, its Standard Webhooks form, a working Copy button.
    secret_dialog = dialog_named(page, "Webhook created")
    expect(secret_dialog).to_be_visible()
    secret_field = secret_dialog.get_by_label("Secret", exact=True)
    expect(secret_field).to_have_value(SECRET_PATTERN)
    first_secret = secret_field.input_value()
    assert len(first_secret) == 27
    expect(secret_dialog.get_by_label("Secret (Standard Webhooks form)")).to_have_value(
        "whsec_" + base64.b64encode(first_secret.encode()).decode()
    )
    copy_button = (
        secret_dialog.locator(".copy-row").filter(has=page.get_by_label("Secret", exact=True)).get_by_role("button")
    )
    expect(copy_button).to_have_text("Copy")
    copy_button.click()
    expect(copy_button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == first_secret
    secret_dialog.get_by_role("link", name="Done").click()
    expect(secret_dialog).to_have_count(0)
    expect(page.locator("dialog")).to_have_count(0)

    row = row_of(page, "Order sync")
    expect(row).to_be_visible()
    expect(row.get_by_role("cell").nth(1)).to_have_text(HOOK_URL)
    expect(row.locator(".badge")).to_have_text(["asset.create", "folder.update"])
    expect(page.get_by_role("heading", name="No webhooks yet")).to_have_count(0)

    # Edit by clicking a plain cell (the endpoint URL), not a link.
    row.get_by_role("cell").nth(1).click()
    edit_dialog = dialog_named(page, "Edit webhook")
    expect(edit_dialog).to_be_visible()
    expect(edit_dialog.get_by_label("Name")).to_have_value("Order sync")
    expect(edit_dialog.get_by_label("asset.create", exact=True)).to_be_checked()
    edit_dialog.get_by_label("Name").fill("Order sync (prod)")
    edit_dialog.get_by_role("button", name="Save").click()
    expect(edit_dialog).to_have_count(0)
    expect(page.get_by_role("status")).to_have_text("Webhook “Order sync (prod)” saved.")
    expect(row_of(page, "Order sync")).to_have_count(0)
    name = "Order sync (prod)"
    row = row_of(page, name)
    expect(row).to_be_visible()

    # The Status switch, from the keyboard: Space turns it off, Enter turns it back on.
    switch = page.get_by_role("switch", name=f"Status of {name}")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch.locator(".switch-label")).to_have_text("Enabled")
    switch.focus()
    page.keyboard.press("Space")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch.locator(".switch-label")).to_have_text("Disabled")
    expect(row).to_have_class(re.compile(r"\bis-disabled\b"))
    switch.focus()
    page.keyboard.press("Enter")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch.locator(".switch-label")).to_have_text("Enabled")
    expect(row).not_to_have_class(re.compile(r"\bis-disabled\b"))

    # Reset secret from the action menu: confirm, and a different secret is shown.
    open_menu_item(page, name, "Reset secret")
    confirm = dialog_named(page, "Reset secret?")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Reset secret").click()
    new_secret_dialog = dialog_named(page, "New secret")
    expect(new_secret_dialog).to_be_visible()
    new_secret_field = new_secret_dialog.get_by_label("Secret", exact=True)
    expect(new_secret_field).to_have_value(SECRET_PATTERN)
    expect(new_secret_field).not_to_have_value(first_secret)
    new_secret_dialog.get_by_role("link", name="Done").click()
    expect(page.locator("dialog")).to_have_count(0)

    # A second webhook, disabled, with several events.
    add_webhook(
        page,
        "Asset audit log",
        "https://hooks.example.com/netx/assets?source=dam",
        ["asset.addToFolder", "asset.create", "asset.delete", "asset.expire"],
        enabled=False,
    )
    expect(page.get_by_role("switch", name="Status of Asset audit log")).to_have_attribute("aria-checked", "false")

    # Delete: Cancel keeps the row; confirming removes it; the last one gone shows the empty state.
    open_menu_item(page, name, "Delete")
    delete_dialog = dialog_named(page, "Delete webhook?")
    expect(delete_dialog).to_be_visible()
    expect(delete_dialog).to_contain_text(name)
    delete_dialog.get_by_role("link", name="Cancel").click()
    expect(delete_dialog).to_have_count(0)
    expect(row_of(page, name)).to_be_visible()

    for doomed in (name, "Asset audit log"):
        open_menu_item(page, doomed, "Delete")
        delete_dialog = dialog_named(page, "Delete webhook?")
        expect(delete_dialog).to_be_visible()
        delete_dialog.get_by_role("button", name="Delete").click()
        expect(delete_dialog).to_have_count(0)
        expect(row_of(page, doomed)).to_have_count(0)
        expect(page.get_by_role("status")).to_have_text(f"Webhook “{doomed}” deleted.")
    expect(page.get_by_role("heading", name="No webhooks yet")).to_be_visible()


def test_add_dialog_rejects_a_plain_http_url_beside_the_field(app, signed_in_page: Page):
    """Submitting the Add dialog with an http:// endpoint keeps the dialog open with an HTTPS error
    next to the Endpoint URL field (linked by aria-describedby), and creates nothing."""
    page = signed_in_page
    page.get_by_role("link", name="Add webhook").click()
    dialog = dialog_named(page, "Add webhook")
    dialog.get_by_label("Name").fill("Plain HTTP")
    dialog.get_by_label("Endpoint URL").fill("http://hooks.example.com/netx")
    dialog.get_by_label("user.create", exact=True).check()
    dialog.get_by_role("button", name="Create").click()

    url_field = dialog.get_by_label("Endpoint URL")
    expect(url_field).to_have_attribute("aria-invalid", "true")
    error_id = url_field.get_attribute("aria-describedby").split()[-1]
    error = dialog.locator(f"#{error_id}")
    expect(error).to_be_visible()
    expect(error).to_contain_text("HTTPS")
    field = dialog.locator(".field").filter(has=page.get_by_label("Endpoint URL"))
    expect(field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(field).to_contain_text("HTTPS is required")
    # What was typed is kept, and the other fields produced no error.
    expect(url_field).to_have_value("http://hooks.example.com/netx")
    expect(dialog.get_by_label("Name")).to_have_value("Plain HTTP")
    expect(dialog.get_by_label("user.create", exact=True)).to_be_checked()
    expect(dialog.get_by_label("Name")).to_have_attribute("aria-invalid", "false")

    dialog.get_by_role("link", name="Cancel").click()
    expect(page.locator("dialog")).to_have_count(0)
    expect(page.get_by_role("heading", name="No webhooks yet")).to_be_visible()
    with app.app_context():
        assert webhook_service.list_webhooks() == []


def test_a_failed_htmx_request_shows_a_visible_error(app, signed_in_page: Page):
    """When an HTMX request fails (saving a webhook that was deleted meanwhile: HTTP 404), the server's
    explanation shows in the open dialog's role=alert region (and the page's), instead of nothing happening."""
    page = signed_in_page
    with app.app_context():
        webhook, _ = webhook_service.create_webhook(
            webhook_service.WebhookFields("Short-lived", HOOK_URL, ("user.expire",), True)
        )
        db.session.commit()
        webhook_id = webhook.id
    page.reload()
    row = row_of(page, "Short-lived")
    row.get_by_role("cell").nth(1).click()
    dialog = dialog_named(page, "Edit webhook")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name").fill("Renamed too late")

    with app.app_context():
        webhook_service.delete_webhook(webhook_id)
        db.session.commit()

    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        dialog.get_by_role("button", name="Save").click()
    assert answer.value.status == 404
    alert = dialog.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(f"The request failed (HTTP 404): Webhook {webhook_id} does not exist")
    expect(page.locator("#request-error")).to_contain_text(f"Webhook {webhook_id} does not exist")
    expect(dialog).to_be_visible()


def test_failures_no_fragment_explains_still_show(app, signed_in_page: Page):
    """An error page the app did not write (a proxy's 502) is not swapped in but reported by its status, and a
    request that never reaches the server says so; the table stays as it was."""
    page = signed_in_page
    with app.app_context():
        webhook_service.create_webhook(webhook_service.WebhookFields("Proxied", HOOK_URL, ("asset.create",), True))
        db.session.commit()
    page.reload()
    switch = page.get_by_role("switch", name="Status of Proxied")
    alert = page.locator("#request-error")
    page.route("**/toggle", lambda route: route.fulfill(status=502, content_type="text/html",
                                                       body="<html><body><h1>502 Bad Gateway</h1></body></html>"))
    switch.click()
    expect(alert).to_have_text("The request failed (HTTP 502 Bad Gateway). Try again.")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(page.locator("h1")).to_have_text("Webhooks")
    page.unroute("**/toggle")
    page.route("**/toggle", lambda route: route.abort())
    switch.click()
    expect(alert).to_have_text("The server could not be reached. Check your connection and try again.")


def test_a_live_update_arriving_while_a_menu_is_open_waits_until_it_closes(app, signed_in_page: Page):
    """A poll answered just after the administrator opened a row's menu does not redraw the table under
    it (which would snap the menu shut); the change appears once the menu is closed."""
    page = signed_in_page
    with app.app_context():
        webhook_service.create_webhook(webhook_service.WebhookFields("Quiet", HOOK_URL, ("asset.create",), True))
        db.session.commit()
    page.reload()
    expect(row_of(page, "Quiet")).to_be_visible()
    held = []

    def hold_first_poll(route):
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/webhooks/live?*", hold_first_poll)
    page.evaluate("""document.body.addEventListener('htmx:afterRequest', function (event) {
        if (event.detail.elt.id === 'webhooks-live') window.livePollsDone = (window.livePollsDone || 0) + 1;
    })""")
    page.wait_for_event("request", lambda request: "/webhooks/live?" in request.url, timeout=WAIT_MS)
    deadline = time.monotonic() + WAIT_MS / 1000
    while not held:  # the route handler runs while Playwright processes events
        assert time.monotonic() < deadline, "the live poll was not intercepted"
        page.evaluate("1")

    # The poll is in flight; the administrator opens a menu; then the answer (a change) arrives.
    page.get_by_role("button", name="Actions for Quiet", exact=True).click()
    menu = menu_of(page, "Quiet")
    expect(menu).to_be_visible()
    with app.app_context():
        webhook_service.create_webhook(webhook_service.WebhookFields("Arrived", HOOK_URL, ("asset.create",), True))
        db.session.commit()
    held[0].continue_()
    wait_for_script(page, "window.livePollsDone >= 1")
    expect(menu).to_be_visible()
    expect(row_of(page, "Arrived")).to_have_count(0)

    page.get_by_role("button", name="Actions for Quiet", exact=True).click()
    expect(menu).to_be_hidden()
    expect(row_of(page, "Arrived")).to_be_visible()


def test_action_menus_work_from_the_keyboard_and_close_by_themselves(app, signed_in_page: Page):
    """A row's ⋯ menu (a popover) opens with Enter, Tab reaches its items, Escape closes it with focus back on its
    button, a click elsewhere closes it, and choosing an item closes it as the item's dialog opens."""
    page = signed_in_page
    with app.app_context():
        webhook_service.create_webhook(webhook_service.WebhookFields("Keyed", HOOK_URL, ("asset.create",), True))
        db.session.commit()
    page.reload()
    button = page.get_by_role("button", name="Actions for Keyed", exact=True)
    menu = menu_of(page, "Keyed")
    expect(row_of(page, "Keyed").locator("td.status")).to_have_css("display", "table-cell")
    expect(menu).to_be_hidden()

    button.focus()
    page.keyboard.press("Enter")
    expect(menu).to_be_visible()
    page.keyboard.press("Tab")
    expect(menu.get_by_role("link", name="Edit")).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(button).to_be_focused()

    button.click()
    expect(menu).to_be_visible()
    page.get_by_role("heading", name="Webhooks", level=1).click()
    expect(menu).to_be_hidden()

    button.click()
    menu.get_by_role("link", name="Delete").focus()
    page.keyboard.press("Enter")
    expect(dialog_named(page, "Delete webhook?")).to_be_visible()
    expect(menu).to_be_hidden()
    expect(dialog_named(page, "Delete webhook?").get_by_role("link", name="Cancel")).to_be_focused()


def test_a_failed_toggle_shows_the_servers_explanation_on_the_page(app, signed_in_page: Page):
    """Toggling a webhook deleted meanwhile (HTTP 404) shows the server's explanation in the page's alert region, the
    row stays as it was, live polls leave the message alone, and the administrator's next request clears it."""
    page = signed_in_page
    with app.app_context():
        webhook, _ = webhook_service.create_webhook(
            webhook_service.WebhookFields("Gone soon", HOOK_URL, ("asset.create",), True))
        db.session.commit()
        webhook_id = webhook.id
    page.reload()
    with app.app_context():
        webhook_service.delete_webhook(webhook_id)
        db.session.commit()
    page.get_by_role("switch", name="Status of Gone soon").click()
    alert = page.locator("#request-error")
    expect(alert).to_have_text(f"The request failed (HTTP 404): Webhook {webhook_id} does not exist; it may have been "
                               "deleted. Reload the page to see the current list.")
    expect(alert).to_have_attribute("role", "alert")
    expect(page.get_by_role("switch", name="Status of Gone soon")).to_have_attribute("aria-checked", "true")
    with page.expect_request(lambda request: "/webhooks/live?" in request.url):
        pass  # a live poll goes by (every 2 s) and leaves the message in place
    expect(alert).to_be_visible()
    page.get_by_role("link", name="Add webhook").click()
    expect(dialog_named(page, "Add webhook")).to_be_visible()
    expect(alert).to_be_empty()


def test_the_pages_work_without_javascript(app, browser, live_server):
    """With JavaScript off every link and form is a plain one: add a webhook (its secret on a page of its own), open
    its action menu (a popover needs no script), toggle it, and delete it after a confirmation page."""
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
        page.goto(WEBHOOKS_PATH)
        page.get_by_label("Email").fill(ADMIN_EMAIL)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Add webhook").click()
        expect(page).to_have_url(re.compile(r"/webhooks/new$"))
        page.get_by_label("Name").fill("Scriptless")
        page.get_by_label("Endpoint URL").fill(HOOK_URL)
        page.get_by_label("user.create", exact=True).check()
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_label("Secret", exact=True)).to_have_value(SECRET_PATTERN)
        page.get_by_role("link", name="Done").click()
        expect(page).to_have_url(re.compile(re.escape(WEBHOOKS_PATH) + "$"))

        page.get_by_role("switch", name="Status of Scriptless").click()
        expect(page.get_by_role("status")).to_have_text("Webhook “Scriptless” disabled.")
        expect(page.get_by_role("switch", name="Status of Scriptless")).to_have_attribute("aria-checked", "false")

        page.get_by_role("button", name="Actions for Scriptless", exact=True).click()
        menu_of(page, "Scriptless").get_by_role("link", name="Delete").click()
        expect(page).to_have_url(re.compile(r"/webhooks/\d+/delete$"))
        page.get_by_role("button", name="Delete").click()
        expect(page.get_by_role("status")).to_have_text("Webhook “Scriptless” deleted.")
        expect(page.get_by_role("heading", name="No webhooks yet")).to_be_visible()
    finally:
        context.close()
