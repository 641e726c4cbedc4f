"""Send again, Replay missed events and Reset secret with an overlap, driven through a real Chromium at 1440 px
with the real worker delivering to an HTTPS receiver; dialogs are opened and closed from the keyboard, and the
focus goes back to what opened them."""

import re
from datetime import timedelta

from factories import FAILED_ATTEMPT, build_history, make_event, make_message
from playwright.sync_api import Page, expect

from tests.browser.conftest import WAIT_MS, sign_in_page
from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus, Webhook, utcnow
from webhooks_app.secrets_vault import decrypt_secret
from webhooks_app.services.webhooks import WebhookFields, create_webhook

WEBHOOKS_PATH = "/system/integrations/api/webhooks"
WIDE = {"width": 1440, "height": 900}
DELIVERY_MS = 20_000


def open_menu_item_by_keyboard(page: Page, webhook_name: str, item: str):
    """Focus the row's ⋯ button, open its menu with Enter and choose `item` with Enter; returns the ⋯ button."""
    button = page.get_by_role("button", name=f"Actions for {webhook_name}", exact=True)
    button.focus()
    page.keyboard.press("Enter")
    link = page.locator(f"#{button.get_attribute('popovertarget')}").get_by_role("link", name=item, exact=True)
    expect(link).to_be_visible()
    link.focus()
    page.keyboard.press("Enter")
    return button


def test_send_again_from_a_failed_messages_details(app, page: Page, sign_in, receiver, delivery_processes):
    """On the activity log, a Failed message's details have Send again; pressing it (Enter) says the new message is
    queued, and the new row arrives on its own, reading "Replay of <messageId>", and turns Sent; the original row
    stays Failed. A disabled webhook's message shows the button disabled with the reason."""
    page.set_viewport_size(WIDE)
    with app.app_context():
        webhook, _ = create_webhook(WebhookFields("Orders", receiver.url("/again"), ("asset.create",), True))
        failed_id = make_message(webhook.id, MessageStatus.FAILED, age=timedelta(minutes=10),
                                 event=make_event(asset_id=7), attempts=FAILED_ATTEMPT)
        db.session.commit()
        webhook_id, original_uuid = webhook.id, db.session.get(Message, failed_id).message_uuid
    sign_in(f"{WEBHOOKS_PATH}/{webhook_id}/log")
    rows = page.locator("#log-rows tr.log-row")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("button", name="asset.create").click()
    details = page.locator(f"#message-details-{failed_id}")
    send_again = details.get_by_role("button", name="Send again")
    expect(send_again).to_be_enabled()
    send_again.focus()
    page.keyboard.press("Enter")
    expect(details.get_by_role("status")).to_contain_text("Queued as a new message")
    expect(details.get_by_role("button", name="Send again")).to_be_focused()

    expect(rows).to_have_count(2)  # the live poll brings the new row, no reload
    expect(rows.first).to_contain_text(f"Replay of {original_uuid}")
    expect(rows.first.locator("span.status")).to_have_text("Sent", timeout=DELIVERY_MS)
    expect(page.locator(f"#message-row-{failed_id} span.status")).to_have_text("Failed")
    (delivery,) = receiver.wait_for_count(1, "/again")
    assert delivery.json()["messageId"] != original_uuid

    with app.app_context():
        db.session.get(Webhook, webhook_id).enabled = False
        db.session.commit()
    page.reload()
    page.locator(f"#message-row-{failed_id}").get_by_role("button", name="asset.create").click()
    disabled = page.locator(f"#message-details-{failed_id}").get_by_role("button", name="Send again")
    expect(disabled).to_be_disabled()
    expect(disabled).to_have_accessible_description(
        "Its webhook “Orders” is disabled: enable it to send messages again.")


def test_replay_missed_events_counts_first_then_the_rows_arrive(app, browser, live_server, receiver,
                                                                 delivery_processes):
    """In a browser on India time (UTC+5:30) the Replay missed events dialog, opened from the keyboard, shows Since in
    local time (when the failures began) and the count; changing Since refreshes the count; Replay answers
    "Replay started", closing it gives the focus back to the menu's button, and the open activity log shows the
    replayed rows arriving and turning Sent."""
    history = build_history(app, receiver.url("/replay"))
    context = browser.new_context(base_url=live_server.url, viewport=WIDE, timezone_id="Asia/Kolkata")
    context.set_default_timeout(WAIT_MS)
    try:
        log_tab = context.new_page()
        sign_in_page(app, log_tab, f"{WEBHOOKS_PATH}/{history.webhook_id}/log")
        expect(log_tab.locator("#log-rows tr.log-row")).to_have_count(4)
        page = context.new_page()
        page.goto(WEBHOOKS_PATH)

        opener = open_menu_item_by_keyboard(page, "Recovering", "Replay missed events…")
        dialog = page.get_by_role("dialog", name="Replay missed events")
        since = dialog.get_by_label("Since")
        expect(since).to_be_focused()
        india = timedelta(hours=5, minutes=30)
        expect(since).to_have_value((history.streak_started + india).strftime("%Y-%m-%dT%H:%M"))
        zone_hint = re.compile(r"In your time zone \(Asia/(Kolkata|Calcutta)\)\.")
        expect(dialog.locator("#since-hint")).to_contain_text(zone_hint)
        count = dialog.locator("#replay-count")
        expect(count).to_have_text("3 events will be sent, oldest first.")
        since.fill((utcnow() - timedelta(hours=6) + india).strftime("%Y-%m-%dT%H:%M"))
        expect(count).to_have_text("4 events will be sent, oldest first.")
        dialog.get_by_role("button", name="Replay").click()

        started = page.get_by_role("dialog", name="Replay started")
        expect(started).to_be_visible()
        expect(started.get_by_role("link", name="Done")).to_be_focused()
        page.keyboard.press("Escape")
        expect(page.locator("dialog")).to_have_count(0)
        expect(opener).to_be_focused()

        log_tab.bring_to_front()
        notes = log_tab.locator("#log-rows tr.log-row .replay-note")
        expect(notes).to_have_count(4, timeout=DELIVERY_MS)
        replayed = log_tab.locator("#log-rows tr.log-row").filter(has=log_tab.locator(".replay-note"))
        expect(replayed.locator("span.status")).to_have_text(["Sent"] * 4, timeout=DELIVERY_MS)
        assert len(receiver.wait_for_count(4, "/replay")) == 4
    finally:
        context.close()


def test_reset_secret_with_an_overlap_and_expire_now(app, page: Page, sign_in):
    """Reset secret offers "Old secret stays valid" (Stop at once checked); with 24 hours the new secret's dialog
    says until when the old one works, and closing it gives the focus back to the menu's button; the edit dialog
    shows "Previous secret valid until …", Expire now ends it, and Escape gives the focus back to the row's link."""
    page.set_viewport_size(WIDE)
    with app.app_context():
        webhook, old = create_webhook(WebhookFields("Rotating", "https://hooks.example.com/r", ("asset.create",), True))
        db.session.commit()
        webhook_id = webhook.id
    sign_in(WEBHOOKS_PATH)

    opener = open_menu_item_by_keyboard(page, "Rotating", "Reset secret")
    question = page.get_by_role("dialog", name="Reset secret?")
    expect(question.get_by_role("link", name="Cancel")).to_be_focused()
    choices = question.get_by_role("group", name="Old secret stays valid")
    expect(choices.get_by_role("radio")).to_have_count(4)
    expect(choices.get_by_label("Stop at once")).to_be_checked()
    choices.get_by_label("24 hours").check()
    question.get_by_role("button", name="Reset secret").click()

    shown = page.get_by_role("dialog", name="New secret")
    expect(shown).to_contain_text("The old secret stays valid until")
    new = shown.get_by_label("Secret", exact=True).input_value()
    shown.get_by_role("link", name="Done").click()
    expect(page.locator("dialog")).to_have_count(0)
    expect(opener).to_be_focused()
    with app.app_context():
        stored = db.session.get(Webhook, webhook_id)
        assert decrypt_secret(stored.secret_encrypted) == new
        assert decrypt_secret(stored.previous_secret_encrypted) == old

    page.locator(f"#webhook-row-{webhook_id}").get_by_role("cell").nth(1).click()
    edit = page.get_by_role("dialog", name="Edit webhook")
    notice = edit.locator("#previous-secret")
    expect(notice).to_contain_text("Previous secret valid until")
    notice.get_by_role("button", name="Expire now").click()
    expect(notice).to_contain_text("The previous secret no longer works")
    page.keyboard.press("Escape")
    expect(page.locator("dialog")).to_have_count(0)
    expect(page.locator(f"#webhook-row-{webhook_id}").get_by_role("link", name="Rotating")).to_be_focused()
    with app.app_context():
        assert db.session.get(Webhook, webhook_id).previous_secret_encrypted is None


def test_the_replay_page_opened_on_its_own_sends_the_local_time_shown(app, browser, live_server):
    """Opened as a page of its own (a bookmark, a reload) in a browser on India time, the Replay form shows Since in
    local time and, sent without htmx, starts the replay at that moment in UTC, not 5 h 30 earlier or later."""
    from sqlalchemy import select

    from webhooks_app.models import Replay

    history = build_history(app, "https://hooks.example.com/replay-page")
    context = browser.new_context(base_url=live_server.url, viewport=WIDE, timezone_id="Asia/Kolkata")
    context.set_default_timeout(WAIT_MS)
    try:
        page = sign_in_page(app, context.new_page(), f"{WEBHOOKS_PATH}/{history.webhook_id}/replay")
        since = page.get_by_label("Since")
        india = timedelta(hours=5, minutes=30)
        expect(since).to_have_value((history.streak_started + india).strftime("%Y-%m-%dT%H:%M"))
        chosen = (utcnow() - timedelta(hours=6)).replace(second=0, microsecond=0)
        since.fill((chosen + india).strftime("%Y-%m-%dT%H:%M"))
        page.get_by_role("button", name="Replay").click()
        expect(page.get_by_role("heading", name="Replay started")).to_be_visible()
    finally:
        context.close()
    with app.app_context():
        started = list(db.session.scalars(select(Replay.since)))
        db.session.remove()
    assert started == [chosen]
