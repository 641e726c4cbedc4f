"""Managing webhooks: create with a one-time secret, edit, toggle, delete, reset secret, Redis alert."""

import logging
import string

from conftest import free_port
from markup import inherited, is_full_page, named, parse, root, select_all, select_one, text_of, texts
from sqlalchemy import func, select

from webhooks_app.events import EVENT_TYPES
from webhooks_app.extensions import db
from webhooks_app.models import Webhook
from webhooks_app.secrets_vault import decrypt_secret

BASE = "/system/integrations/api/webhooks"
HTMX = {"HX-Request": "true"}


def create(admin_client, **overrides):
    data = {
        "name": "Asset sync",
        "url": "https://hooks.example.com/netx",
        "events": ["asset.create", "folder.update"],
        "enabled": "y",
        "csrf_token": admin_client.csrf_token,
        **overrides,
    }
    response = admin_client.post(f"{BASE}/new", data=data, headers=HTMX)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response


def secret_shown(response) -> str:
    """The secret in the dialog's Secret field."""
    return select_one(response, "textarea#webhook-secret").get_text()


def only_webhook(app) -> Webhook:
    with app.app_context():
        webhook = db.session.scalar(select(Webhook))
        db.session.expunge_all()
        return webhook


def test_webhooks_page_sits_under_system_integrations_api(admin_client):
    """The page's breadcrumb and navigation read System › Integrations › API › Webhooks."""
    page = parse(admin_client.get(BASE))
    assert texts(page, "nav.breadcrumb li") == ["System", "Integrations", "API", "Webhooks"]
    assert texts(page, 'nav.sidebar a[aria-current="page"]') == ["Webhooks"]
    assert named(page, "a", "Add webhook")["href"] == f"{BASE}/new"
    assert "No webhooks yet" in text_of(page)


def test_add_webhook_form_offers_every_event_and_enabled_by_default(admin_client):
    """The Add form has Name, Endpoint URL, one checkbox per event and Enabled checked."""
    form = parse(admin_client.get(f"{BASE}/new", headers=HTMX))
    assert (root(form).name, root(form)["id"]) == ("dialog", "webhook-form-dialog")
    assert texts(form, "label[for=name], label[for=url], label[for=enabled]") == ["Name", "Endpoint URL", "Enabled"]
    assert texts(form, "label[for^=events-]") == [
        "asset.addToFolder", "asset.checkin", "asset.checkout", "asset.create", "asset.delete",
        "asset.expire", "folder.create", "folder.update", "user.create", "user.expire", "user.update",
    ]
    enabled = select_one(form, "input#enabled")
    assert enabled["type"] == "checkbox" and enabled.has_attr("checked")
    assert named(form, "button", "Create")["type"] == "submit"


def test_create_shows_the_secret_once_and_stores_it_encrypted(app, admin_client):
    """Create shows a 27-character secret, with Test and Done, that no later page shows again."""
    body = parse(create(admin_client))
    secret = secret_shown(body)
    assert len(secret) == 27 and set(secret) <= set(string.ascii_letters + string.digits + "-_")
    assert text_of(select_one(body, "label[for=webhook-secret]")) == "Secret"
    assert named(body, "a", "Done") and "will not be shown again" in text_of(body)
    assert select_one(body, "#webhooks-table")["hx-swap-oob"] == "true"

    webhook = only_webhook(app)
    assert secret not in webhook.secret_encrypted
    with app.app_context():
        assert decrypt_secret(webhook.secret_encrypted) == secret
    for path in (BASE, f"{BASE}/{webhook.id}/edit", f"{BASE}/{webhook.id}/delete", f"{BASE}/{webhook.id}/reset-secret"):
        assert secret not in admin_client.get(path).get_data(as_text=True)


def test_secrets_are_never_logged(app, admin_client, caplog):
    """Neither creating a webhook nor resetting its secret writes the secret to the logs."""
    caplog.set_level(logging.DEBUG)
    first = secret_shown(create(admin_client))
    webhook = only_webhook(app)
    reset = admin_client.post(
        f"{BASE}/{webhook.id}/reset-secret", data={"csrf_token": admin_client.csrf_token}, headers=HTMX
    )
    second = secret_shown(reset)
    assert first not in caplog.text and second not in caplog.text


def test_secret_response_is_never_cached(admin_client):
    """The page that shows a secret tells browsers and proxies not to store it."""
    assert create(admin_client).headers["Cache-Control"] == "no-store"


def test_table_lists_name_url_events_and_status_toggle(app, admin_client):
    """Each row shows name, endpoint URL, events, an on/off Status switch and its action menu."""
    create(admin_client)
    webhook = only_webhook(app)
    row = select_one(admin_client.get(BASE), f"tr#webhook-row-{webhook.id}")
    assert texts(row, "td.name a, td.url") == ["Asset sync", "https://hooks.example.com/netx"]
    assert texts(row, ".badge") == ["asset.create", "folder.update"]
    switch = select_one(row, "[role=switch]")
    # Its accessible name is its content, which starts with the visible word (label in name).
    assert switch["aria-checked"] == "true" and not switch.has_attr("aria-label")
    assert " ".join(switch.get_text().split()) == "Enabled: Status of Asset sync"
    assert row["hx-get"] == f"{BASE}/{webhook.id}/edit" and inherited(row, "hx-target") == "#dialog-host"
    menu = select_one(row, f"#{select_one(row, 'button[popovertarget]')['popovertarget']}")
    assert menu.has_attr("popover")
    for action, path in (("Edit", "edit"), ("Activity log", "log"), ("Reset secret", "reset-secret"),
                         ("Delete", "delete")):
        link = named(menu, "a", action)
        assert link["href"].endswith(f"/{webhook.id}/{path}")
        # Dialogs open in the dialog host (boosted links); the activity log is a page of its own.
        assert (inherited(link, "hx-boost"), inherited(link, "hx-target")) == (
            ("false" if action == "Activity log" else "true"), "#dialog-host")


def test_a_webhook_with_every_event_shows_all_events(app, admin_client):
    """A webhook subscribed to every event in the catalogue shows one "All events" badge, one with fewer its events."""
    create(admin_client, events=[event.name for event in EVENT_TYPES])
    create(admin_client, name="Some", events=[event.name for event in EVENT_TYPES[1:]])
    page = parse(admin_client.get(BASE))
    every, some = select_all(page, "#webhooks-table tbody tr")
    assert texts(every, ".badge") == ["All events"]
    assert texts(some, ".badge") == [event.name for event in EVENT_TYPES[1:]]


def test_htmx_gets_the_fragment_and_browsers_the_page(admin_client):
    """An HTMX request gets only the table fragment; a plain request the whole page that includes it."""
    fragment = admin_client.get(BASE, headers=HTMX)
    assert root(fragment)["id"] == "webhooks-table" and not is_full_page(fragment)
    page = admin_client.get(BASE)
    assert is_full_page(page) and select_one(page, "main #webhooks-table")


def test_edit_changes_name_url_events_and_enabled(app, admin_client):
    """Saving the Edit form changes every field, closes the dialog and refreshes the table."""
    create(admin_client)
    webhook = only_webhook(app)
    form = parse(admin_client.get(f"{BASE}/{webhook.id}/edit", headers=HTMX))
    assert select_one(form, "input#name")["value"] == "Asset sync" and named(form, "button", "Save")
    response = admin_client.post(
        f"{BASE}/{webhook.id}/edit",
        data={"name": "Renamed", "url": "https://other.example.com/h", "events": ["user.expire"],
              "csrf_token": admin_client.csrf_token},
        headers=HTMX,
    )
    body = parse(response)
    assert response.status_code == 200
    assert body.find("dialog") is None and "Renamed" in text_of(body) and "saved." in text_of(body)
    with app.app_context():
        changed = db.session.get(Webhook, webhook.id)
        assert (changed.name, changed.url, changed.event_types, changed.enabled) == (
            "Renamed", "https://other.example.com/h", ["user.expire"], False)
        assert changed.secret_encrypted == webhook.secret_encrypted


def test_edit_with_bad_input_changes_nothing(app, admin_client):
    """A refused edit leaves the stored webhook exactly as it was."""
    create(admin_client)
    webhook = only_webhook(app)
    response = admin_client.post(
        f"{BASE}/{webhook.id}/edit",
        data={"name": "Renamed", "url": "http://x.example.com", "events": [], "csrf_token": admin_client.csrf_token},
        headers=HTMX,
    )
    assert response.status_code == 422
    with app.app_context():
        after = db.session.get(Webhook, webhook.id)
        assert (after.name, after.url) == ("Asset sync", webhook.url)
        assert after.event_types == ["asset.create", "folder.update"]


def test_status_toggle_disables_and_enables_in_place(app, admin_client):
    """The toggle answers HTMX with the row only, red and unchecked when off, green when on."""
    create(admin_client)
    webhook = only_webhook(app)
    off = admin_client.post(
        f"{BASE}/{webhook.id}/toggle", data={"enabled": "0", "csrf_token": admin_client.csrf_token}, headers=HTMX
    )
    assert (root(off).name, root(off)["id"]) == ("tr", f"webhook-row-{webhook.id}")
    switch = select_one(off, "[role=switch]")
    assert switch["aria-checked"] == "false" and "off" in switch["class"]
    assert text_of(select_one(switch, ".switch-label")) == "Disabled"
    assert only_webhook(app).enabled is False
    on = admin_client.post(
        f"{BASE}/{webhook.id}/toggle", data={"enabled": "1", "csrf_token": admin_client.csrf_token}, headers=HTMX
    )
    switch = select_one(on, "[role=switch]")
    assert switch["aria-checked"] == "true" and "on" in switch["class"]
    assert text_of(select_one(switch, ".switch-label")) == "Enabled"
    assert only_webhook(app).enabled is True


def test_toggle_is_idempotent_and_needs_csrf(app, admin_client):
    """Asking twice for "off" leaves it off; a toggle without the CSRF token changes nothing."""
    create(admin_client)
    webhook = only_webhook(app)
    for _ in range(2):
        admin_client.post(f"{BASE}/{webhook.id}/toggle", data={"enabled": "0", "csrf_token": admin_client.csrf_token})
    assert only_webhook(app).enabled is False
    refused = admin_client.post(f"{BASE}/{webhook.id}/toggle", data={"enabled": "1"}, headers=HTMX)
    assert refused.status_code == 400
    assert only_webhook(app).enabled is False


def test_enabling_clears_an_automatic_disable_reason(app, admin_client):
    """Re-enabling a webhook that was disabled automatically clears the stored reason."""
    create(admin_client)
    webhook = only_webhook(app)
    with app.app_context():
        stored = db.session.get(Webhook, webhook.id)
        stored.enabled = False
        stored.disabled_reason = "All retry attempts failed: connection refused."
        db.session.commit()
    alert = text_of(select_one(admin_client.get(f"{BASE}/{webhook.id}/edit"), "dialog .alert[role=alert]"))
    assert "disabled automatically" in alert and "connection refused" in alert
    admin_client.post(f"{BASE}/{webhook.id}/toggle", data={"enabled": "1", "csrf_token": admin_client.csrf_token})
    assert only_webhook(app).disabled_reason is None


def test_delete_asks_for_confirmation_first(app, admin_client):
    """Delete's GET only asks; the confirming POST removes the webhook and its subscriptions."""
    create(admin_client)
    webhook = only_webhook(app)
    question = admin_client.get(f"{BASE}/{webhook.id}/delete", headers=HTMX)
    assert text_of(select_one(question, "dialog h2")) == "Delete webhook?" and "cannot be undone" in text_of(question)
    assert select_one(question, "dialog form")["action"] == f"{BASE}/{webhook.id}/delete"
    assert only_webhook(app) is not None
    done = admin_client.post(
        f"{BASE}/{webhook.id}/delete", data={"csrf_token": admin_client.csrf_token}, headers=HTMX
    )
    assert "deleted." in text_of(select_one(done, "#flash-region")) and "No webhooks yet" in text_of(done)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Webhook)) == 0
    assert admin_client.get(f"{BASE}/{webhook.id}/edit").status_code == 404


def test_reset_secret_shows_a_new_secret_once_and_replaces_the_old(app, admin_client):
    """Reset secret confirms first, then shows a new secret; only the new one is stored."""
    first = secret_shown(create(admin_client))
    webhook = only_webhook(app)
    question = admin_client.get(f"{BASE}/{webhook.id}/reset-secret", headers=HTMX)
    assert text_of(select_one(question, "dialog h2")) == "Reset secret?"
    with app.app_context():
        assert decrypt_secret(db.session.get(Webhook, webhook.id).secret_encrypted) == first
    body = admin_client.post(
        f"{BASE}/{webhook.id}/reset-secret", data={"csrf_token": admin_client.csrf_token}, headers=HTMX
    )
    second = secret_shown(body)
    assert second != first and "old secret no longer works" in text_of(body)
    with app.app_context():
        assert decrypt_secret(db.session.get(Webhook, webhook.id).secret_encrypted) == second


def test_secret_dialog_shows_the_standard_webhooks_form(admin_client):
    """The secret is also shown as whsec_ + base64 of its bytes for Standard Webhooks libraries."""
    import base64

    body = create(admin_client)
    whsec = "whsec_" + base64.b64encode(secret_shown(body).encode()).decode()
    assert select_one(body, "textarea#webhook-secret-whsec").get_text() == whsec


def test_missing_webhook_is_a_404_with_a_message(admin_client):
    """Asking for a webhook that does not exist says so."""
    response = admin_client.get(f"{BASE}/999/edit")
    assert response.status_code == 404
    assert "does not exist" in response.get_data(as_text=True)


def test_non_htmx_forms_work_without_javascript(app, admin_client):
    """Without HTMX, create shows the secret page and toggle/delete redirect back with a message."""
    response = admin_client.post(
        f"{BASE}/new",
        data={"name": "Plain", "url": "https://hooks.example.com/", "events": ["asset.delete"],
              "enabled": "y", "csrf_token": admin_client.csrf_token},
    )
    assert response.status_code == 201 and is_full_page(response)
    webhook = only_webhook(app)
    toggled = admin_client.post(
        f"{BASE}/{webhook.id}/toggle", data={"enabled": "0", "csrf_token": admin_client.csrf_token}
    )
    assert toggled.status_code == 302
    assert "disabled." in text_of(select_one(admin_client.get(BASE), "#flash-region"))
    deleted = admin_client.post(f"{BASE}/{webhook.id}/delete", data={"csrf_token": admin_client.csrf_token})
    assert deleted.status_code == 302


def test_redis_unavailable_shows_an_alert_and_management_keeps_working(app, admin_client, caplog, redis_url):
    """With Redis down the page warns that messages are not processed, logs it, and webhooks can still be added."""
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    try:
        alert = text_of(select_one(admin_client.get(BASE), "#redis-alert [role=alert]"))
        assert "Redis unavailable." in alert and "not being processed" in alert
        assert "Redis unavailable" in caplog.text
        create(admin_client)
        assert only_webhook(app).name == "Asset sync"
        poll = admin_client.get(f"{BASE}/redis-status", headers=HTMX)
        assert root(poll)["id"] == "redis-alert" and "Redis unavailable." in text_of(poll)
    finally:
        app.config["REDIS_URL"] = redis_url


def test_no_redis_alert_when_redis_answers(admin_client):
    """With Redis answering there is no alert, and the polled fragment is empty."""
    assert text_of(select_one(admin_client.get(BASE), "#redis-alert")) == ""
    poll = admin_client.get(f"{BASE}/redis-status", headers=HTMX)
    assert root(poll)["id"] == "redis-alert" and text_of(poll) == "" and not root(poll).select(".alert")


def live_poll_url(response) -> str:
    return select_one(response, "#webhooks-live")["hx-get"]


def test_live_poll_answers_204_until_something_changes(app, admin_client):
    """The open Webhooks page's poll costs a 204 while nothing changed; an automatic disable redraws the table."""
    create(admin_client)
    webhook = only_webhook(app)
    poll = live_poll_url(admin_client.get(BASE))
    quiet = admin_client.get(poll, headers=HTMX)
    assert quiet.status_code == 204 and quiet.get_data() == b""
    with app.app_context():
        stored = db.session.get(Webhook, webhook.id)
        stored.enabled = False
        stored.disabled_reason = "All 6 delivery attempts of a message failed."
        db.session.commit()
    update = admin_client.get(poll, headers=HTMX)
    table = select_one(update, "#webhooks-table")
    assert table["hx-swap-oob"] == "true" and select_one(table, "[role=switch]")["aria-checked"] == "false"
    assert "Disabled automatically" in text_of(table)
    assert admin_client.get(live_poll_url(update), headers=HTMX).status_code == 204


def test_live_poll_shows_and_clears_the_redis_alert(app, admin_client, redis_url):
    """When Redis stops answering the poll brings the alert; when it answers again the alert clears."""
    poll = live_poll_url(admin_client.get(BASE))
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    try:
        down = parse(admin_client.get(poll, headers=HTMX))
        alert = select_one(down, "#redis-alert")
        assert alert["hx-swap-oob"] == "true" and "Redis unavailable." in text_of(alert)
    finally:
        app.config["REDIS_URL"] = redis_url
    up = admin_client.get(live_poll_url(down), headers=HTMX)
    alert = select_one(up, "#redis-alert")
    assert alert["hx-swap-oob"] == "true" and text_of(alert) == ""


def test_an_id_no_webhook_can_have_is_a_404(admin_client):
    """Ids beyond the id column's range (20 digits, 2^31) are 404 on every webhook route, never a 500."""
    for webhook_id in ("99999999999999999999", "2147483648", "0"):
        for action in ("edit", "delete", "reset-secret"):
            assert admin_client.get(f"{BASE}/{webhook_id}/{action}").status_code == 404
        for action in ("toggle", "test"):
            response = admin_client.post(f"{BASE}/{webhook_id}/{action}", data={"csrf_token": admin_client.csrf_token})
            assert response.status_code == 404


def test_text_with_a_nul_character_is_refused_with_a_message(app, admin_client):
    """A name holding NUL (which PostgreSQL cannot store) is a 400 naming the field, and nothing is saved."""
    response = admin_client.post(f"{BASE}/new", headers=HTMX, data={
        "name": "bad\x00name", "url": "https://hooks.example.com/x", "events": ["asset.create"],
        "csrf_token": admin_client.csrf_token})
    assert response.status_code == 400
    assert "“name” contains a NUL character" in text_of(response)
    assert only_webhook(app) is None
