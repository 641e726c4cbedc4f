"""Every page and dialog at 1440×900 and at 390×844 (a phone, emulated): no sideways page scroll, every control
inside the viewport and reached with Tab, no axe-core violation in light or dark mode, with 200-character names
and URLs; focus back on the opener whenever a dialog closes. One browser, one context per viewport.

Set WEBHOOKS_SCREENSHOTS=1 to (re)write the README's screenshots (docs/*-desktop.png and docs/*-phone.png).
"""

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from factories import make_message
from playwright.sync_api import Browser, Page, expect

from tests.browser.audit import VIEWPORTS, audit
from tests.browser.conftest import WAIT_MS
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_user
from webhooks_app.extensions import db
from webhooks_app.models import MessageStatus
from webhooks_app.services.api_tokens import create_api_token
from webhooks_app.services.webhooks import WebhookFields, create_webhook

BASE = "/system/integrations/api"
WEBHOOKS_PATH = f"{BASE}/webhooks"
DOCS = Path(__file__).resolve().parents[2] / "docs"
LONG_NAME = ("Quarterly digital asset archive synchronisation for the northern region " * 4)[:199] + "Z"
LONG_URL = "https://hooks.example.com/" + "very-long-path-segment/" * 7 + "end?source=dam&region=north"
OK, FAILED = (True, 204, None, ""), (False, 503, "http_status", "<h1>503 Service Unavailable</h1>")


@pytest.fixture
def world(app) -> dict:
    """A long-named webhook with a busy log, two webhooks of the same name, one disabled by failures, one switched
    off by an administrator with an empty log, and an API token."""
    with app.app_context():
        events = ("asset.create", "asset.delete", "folder.update", "user.create")
        long_one, _ = create_webhook(WebhookFields(LONG_NAME, LONG_URL, events, True))
        orders, _ = create_webhook(WebhookFields("Order sync", "https://orders.example.com/hook", ("asset.create",),
                                                 True))
        create_webhook(WebhookFields("Order sync", "https://backup.example.org/hook", ("asset.create",), True))
        broken, _ = create_webhook(WebhookFields("Broken endpoint", "https://broken.example.net/hook",
                                                 ("asset.create",), True))
        quiet, _ = create_webhook(WebhookFields("Quiet", "https://quiet.example.com/hook", ("user.expire",), False))
        db.session.flush()
        broken.enabled = False
        broken.disabled_reason = "All 6 delivery attempts of a message failed; the last one: HTTP 500."
        plan = [(MessageStatus.SENT, [OK]), (MessageStatus.FAILED, [FAILED] * 6),
                (MessageStatus.SCHEDULED_RETRY, [FAILED, FAILED]), (MessageStatus.QUEUED, [])]
        for number in range(12):
            status, attempts = plan[number % 4]
            make_message(long_one.id, status, age=timedelta(hours=12 - number), attempts=attempts)
        make_message(orders.id, MessageStatus.SENT, age=timedelta(minutes=30), attempts=[OK])
        create_api_token("DAM production")
        db.session.commit()
        return {"long": long_one.id, "orders": orders.id, "quiet": quiet.id, "broken": broken.id}


@pytest.fixture(params=list(VIEWPORTS))
def viewport_page(request, browser: Browser, live_server, app):
    """A signed-in page in a fresh context of the parametrized viewport."""
    context = browser.new_context(base_url=live_server.url, **VIEWPORTS[request.param])
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    page.goto(WEBHOOKS_PATH)
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
    page.viewport_name = request.param
    yield page
    context.close()
    assert not errors, f"uncaught JavaScript errors: {errors}"


def screenshot(page: Page, name: str) -> None:
    if os.environ.get("WEBHOOKS_SCREENSHOTS") == "1":
        page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}-{page.viewport_name}.png"))


def open_menu(page: Page, webhook_id: int):
    page.locator(f"#webhook-menu-button-{webhook_id}").click()
    menu = page.locator(f"#webhook-menu-{webhook_id}")
    expect(menu).to_be_visible()
    return menu


def check_dialog(page: Page, problems: list, title: str, opener, closer: str, where: str) -> None:
    """The dialog opened by `opener` is audited, closed with `closer` (Escape, or a link or button's name), and the
    focus is back on the element that opened it (its successor by id, after a redraw)."""
    opener_id = opener.get_attribute("id")
    opener.click()
    dialog = page.get_by_role("dialog", name=title)
    expect(dialog).to_be_visible()
    problems += audit(page, f"{where} dialog {title!r}")
    if closer == "Escape":
        page.keyboard.press("Escape")
    else:
        dialog.get_by_role("link", name=closer, exact=True).or_(
            dialog.get_by_role("button", name=closer, exact=True)).first.click()
    expect(page.locator("dialog")).to_have_count(0)
    expect(page.locator(f"#{opener_id}")).to_be_focused()


def test_every_page_and_dialog_fits_works_by_keyboard_and_passes_axe(viewport_page: Page, world):
    """At this viewport: the Webhooks page (200-character name and URL, same-name webhooks, manual and automatic
    disable), its Add, Edit, Reset secret, Delete and Test dialogs and the secret shown on Create, the phone's
    navigation menu, the activity log with a row's details, an empty log, All activity, the API tokens page with a
    new token and its Revoke dialog, and the Installing Redis help: no sideways scroll, every control inside the
    viewport and reached with Tab, no axe-core violation (light and dark), and focus back on each dialog's opener."""
    page, where, problems = viewport_page, viewport_page.viewport_name, []
    long_id = world["long"]
    row = page.locator(f"#webhook-row-{long_id}")
    expect(row.locator("td.name a")).to_have_attribute("title", LONG_NAME)
    expect(row.locator("td.url")).to_have_attribute("title", LONG_URL)
    for cell in ("td.url", "td.events", "td.health", "td.status", "td.row-actions"):
        expect(row.locator(cell)).to_be_in_viewport()
    screenshot(page, "webhooks-page")
    problems += audit(page, f"{where} Webhooks page")

    if where == "phone":
        menu_button = page.get_by_role("button", name="Menu")
        expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
        menu_button.click()
        navigation = page.get_by_role("navigation", name="Main")
        expect(navigation.get_by_role("link", name="All activity")).to_be_in_viewport()
        page.keyboard.press("Escape")
        expect(navigation).to_be_hidden()

    check_dialog(page, problems, "Add webhook", page.get_by_role("link", name="Add webhook"), "Escape", where)
    name_link = page.locator(f"#webhook-name-{long_id}")
    name_link.click()
    edit = page.get_by_role("dialog", name="Edit webhook")
    expect(edit.get_by_label("Name")).to_have_value(LONG_NAME)
    expect(edit.get_by_label("Endpoint URL")).to_have_value(LONG_URL)
    edit.get_by_role("link", name="Close").click()
    expect(name_link).to_be_focused()
    check_dialog(page, problems, "Edit webhook", name_link, "Cancel", where)
    for item, title, closer in (("Reset secret", "Reset secret?", "Cancel"), ("Delete", "Delete webhook?", "Close")):
        menu_button = page.locator(f"#webhook-menu-button-{long_id}")
        open_menu(page, long_id).get_by_role("link", name=item).click()
        dialog = page.get_by_role("dialog", name=title)
        expect(dialog).to_be_visible()
        problems += audit(page, f"{where} dialog {title!r}")
        dialog.get_by_role("link", name=closer).click()
        expect(menu_button).to_be_focused()
    open_menu(page, world["orders"]).get_by_role("button", name="Test").click()
    test_dialog = page.get_by_role("dialog", name="Test Order sync")
    expect(test_dialog).to_be_visible()
    problems += audit(page, f"{where} Test dialog", tab_walk=False)
    test_dialog.get_by_role("link", name="Done").click()
    expect(page.locator(f"#webhook-menu-button-{world['orders']}")).to_be_focused()

    page.get_by_role("link", name="Add webhook").click()
    add = page.get_by_role("dialog", name="Add webhook")
    add.get_by_label("Name").fill("Fresh " + LONG_NAME[:150])
    add.get_by_label("Endpoint URL").fill(LONG_URL)
    add.get_by_label("asset.create", exact=True).check()
    add.get_by_role("button", name="Create").click()
    secret = page.get_by_role("dialog", name="Webhook created")
    expect(secret.get_by_label("Secret", exact=True)).to_be_in_viewport()
    screenshot(page, "secret-dialog")
    problems += audit(page, f"{where} secret dialog", tab_walk=False)
    secret.get_by_role("link", name="Done").click()
    expect(page.get_by_role("link", name="Add webhook")).to_be_focused()

    page.goto(f"{WEBHOOKS_PATH}/{long_id}/log")
    page.locator("#log-rows tr.log-row").nth(2).get_by_role("button").click()
    details = page.locator("tr.details-row[data-loaded]")
    expect(details).to_be_visible()
    details.get_by_text("Request and response").first.click()
    screenshot(page, "activity-log")
    problems += audit(page, f"{where} activity log with details")
    page.goto(f"{WEBHOOKS_PATH}/{world['quiet']}/log")
    expect(page.get_by_role("button", name="Send a test message")).to_be_visible()
    problems += audit(page, f"{where} empty log")
    page.goto(f"{BASE}/activity")
    problems += audit(page, f"{where} All activity")

    page.goto(f"{BASE}/tokens")
    page.get_by_label("Token name").fill("Phone check")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("API token")
    expect(token).to_have_value(re.compile(r"^whk_"))
    expect(token).to_be_in_viewport()
    box = token.bounding_box()
    assert box["width"] >= 300, f"the token field is {box['width']:.0f} px wide"
    problems += audit(page, f"{where} API tokens with a new token")
    revoke = page.get_by_role("link", name="Revoke Phone check")
    check_dialog(page, problems, "Revoke API token?", revoke, "Cancel", where)

    page.goto(f"{WEBHOOKS_PATH}/help/redis")
    problems += audit(page, f"{where} Installing Redis help")
    assert problems == [], "\n".join(problems)


def test_focus_goes_back_after_save_and_to_the_first_field_with_an_error(page: Page, sign_in, world):
    """Save closes the Edit dialog with the focus back on the row's name link (redrawn); a refused Add puts the focus
    on the field with the error (Endpoint URL, then Events), not on Name; a refused log search focuses the search."""
    sign_in(WEBHOOKS_PATH)
    name_link = page.locator(f"#webhook-name-{world['orders']}")
    name_link.click()
    edit = page.get_by_role("dialog", name="Edit webhook")
    edit.get_by_label("Name").fill("Order sync (renamed)")
    edit.get_by_role("button", name="Save").click()
    expect(page.locator("dialog")).to_have_count(0)
    expect(page.locator(f"#webhook-name-{world['orders']}")).to_have_text("Order sync (renamed)")
    expect(page.locator(f"#webhook-name-{world['orders']}")).to_be_focused()

    page.get_by_role("link", name="Add webhook").click()
    add = page.get_by_role("dialog", name="Add webhook")
    add.get_by_label("Name").fill("Plain")
    add.get_by_label("Endpoint URL").fill("http://hooks.example.com/x")
    add.get_by_label("user.create", exact=True).check()
    add.get_by_role("button", name="Create").click()
    expect(add.get_by_label("Endpoint URL")).to_have_attribute("aria-invalid", "true")
    expect(add.get_by_label("Endpoint URL")).to_be_focused()
    add.get_by_label("Endpoint URL").fill("https://hooks.example.com/x")
    add.get_by_label("user.create", exact=True).uncheck()
    add.get_by_role("button", name="Create").click()
    expect(add.get_by_label("asset.addToFolder", exact=True)).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("link", name="Add webhook")).to_be_focused()

    page.goto(f"{WEBHOOKS_PATH}/{world['long']}/log")
    search = page.get_by_role("searchbox", name="Search")
    search.fill("not an id")
    page.get_by_role("button", name="Apply").click()
    expect(search).to_have_attribute("aria-invalid", "true")
    expect(search).to_be_focused()
    expect(page.locator("#q-errors")).to_contain_text("Search for a messageId or eventId")


def test_the_live_log_keeps_the_readers_place_and_focus(app, page: Page, sign_in, world):
    """Scrolled down the log with a row's button focused: a status change redraws that row and the focus stays on
    it; new messages do not push the rows down but wait behind a "2 new messages" button, whose click shows them;
    the 24-hour counts update by themselves."""
    log_path = f"{WEBHOOKS_PATH}/{world['long']}/log"
    sign_in(log_path)
    with app.app_context():
        extra = [make_message(world["long"], MessageStatus.SENT, age=timedelta(days=2, minutes=n), attempts=[OK])
                 for n in range(40)]
        db.session.commit()
    page.reload()
    queued_toggle = page.locator("#log-rows tr.log-row").filter(
        has=page.locator("span.status", has_text="Queued")).first.get_by_role("button")
    toggle_id = queued_toggle.get_attribute("id")
    message_id = int(toggle_id.removeprefix("message-toggle-"))
    queued_toggle.scroll_into_view_if_needed()
    # Scrolled at once (a mouse wheel scrolls a moment after its event: measured too early, the row then "moved").
    page.evaluate("window.scrollTo({top: window.scrollY + 400, behavior: 'instant'})")
    queued_toggle.focus()
    before = queued_toggle.bounding_box()["y"]
    sent_today = page.locator("#log-summary tbody tr").first.locator("td.status-sent")
    sent_count = int(sent_today.inner_text())

    from sqlalchemy import update

    from webhooks_app.models import Message, utcnow
    with app.app_context():
        db.session.execute(update(Message).where(Message.id == message_id).values(
            status=MessageStatus.SENT, updated_at=utcnow() + timedelta(seconds=1)))
        make_message(world["long"], MessageStatus.SENT, attempts=[OK])
        make_message(world["long"], MessageStatus.QUEUED)
        db.session.commit()
    same_row = page.locator(f"#message-row-{message_id}")
    expect(same_row.locator("span.status")).to_have_text("Sent", timeout=10_000)
    expect(page.locator(f"#{toggle_id}")).to_be_focused()
    new_button = page.get_by_role("button", name="2 new messages")
    expect(new_button).to_be_visible(timeout=10_000)
    assert abs(page.locator(f"#{toggle_id}").bounding_box()["y"] - before) < 2, "the row moved under the reader"
    expect(sent_today).to_have_text(str(sent_count + 2))  # the row that turned Sent and the new Sent one
    new_button.click()
    expect(page.locator("#log-rows tr.log-row[data-held]")).to_have_count(0)
    expect(page.locator("#log-new-rows")).to_be_hidden()
    assert len(extra) == 40
