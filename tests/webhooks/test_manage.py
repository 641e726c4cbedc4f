"""Managing webhooks: create with a one-time secret, edit, toggle, delete, reset secret, Redis alert."""

import logging
import re
import string

from conftest import free_port
from sqlalchemy import func, select

from webhooks_app.extensions import db
from webhooks_app.models import Webhook
from webhooks_app.secrets_vault import decrypt_secret

BASE = "/system/integrations/api/webhooks"
HTMX = {"HX-Request": "true"}
SECRET_FIELD = re.compile(r'id="webhook-secret" type="text" value="([^"]+)"')


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


def only_webhook(app) -> Webhook:
    with app.app_context():
        webhook = db.session.scalar(select(Webhook))
        db.session.expunge_all()
        return webhook


def test_webhooks_page_sits_under_system_integrations_api(admin_client):
    """The page's breadcrumb and navigation read System › Integrations › API › Webhooks."""
    page = admin_client.get(BASE).get_data(as_text=True)
    crumbs = re.search(r'<nav class="breadcrumb".*?</nav>', page, re.S).group(0)
    assert re.findall(r"<li>(?:<[^>]+>)*([^<]+)", crumbs) == ["System", "Integrations", "API", "Webhooks"]
    assert 'aria-current="page">Webhooks</a>' in page
    assert "Add webhook" in page
    assert "No webhooks yet" in page


def test_add_webhook_form_offers_every_event_and_enabled_by_default(admin_client):
    """The Add form has Name, Endpoint URL, one checkbox per event and Enabled checked."""
    form = admin_client.get(f"{BASE}/new", headers=HTMX).get_data(as_text=True)
    assert form.lstrip().startswith('<dialog id="webhook-form-dialog"')
    for label in ("Name", "Endpoint URL", "Enabled"):
        assert f">{label}</label>" in form
    events = re.findall(r'<label for="events-\d+">([^<]+)</label>', form)
    assert events == [
        "asset.addToFolder", "asset.checkin", "asset.checkout", "asset.create", "asset.delete",
        "asset.expire", "folder.create", "folder.update", "user.create", "user.expire", "user.update",
    ]
    assert re.search(r'<input checked id="enabled" name="enabled" type="checkbox"', form)
    assert ">Create</button>" in form


def test_create_shows_the_secret_once_and_stores_it_encrypted(app, admin_client):
    """Create shows a 27-character secret, with Test and Done, that no later page shows again."""
    body = create(admin_client).get_data(as_text=True)
    secret = SECRET_FIELD.search(body).group(1)
    assert len(secret) == 27 and set(secret) <= set(string.ascii_letters + string.digits + "-_")
    assert '<label for="webhook-secret">Secret</label>' in body
    assert ">Done</a>" in body and "will not be shown again" in body
    assert 'id="webhooks-table" class="panel table-panel" hx-swap-oob="true"' in body

    webhook = only_webhook(app)
    assert secret not in webhook.secret_encrypted
    with app.app_context():
        assert decrypt_secret(webhook.secret_encrypted) == secret
    for path in (BASE, f"{BASE}/{webhook.id}/edit", f"{BASE}/{webhook.id}/delete", f"{BASE}/{webhook.id}/reset-secret"):
        assert secret not in admin_client.get(path).get_data(as_text=True)


def test_secrets_are_never_logged(app, admin_client, caplog):
    """Neither creating a webhook nor resetting its secret writes the secret to the logs."""
    caplog.set_level(logging.DEBUG)
    first = SECRET_FIELD.search(create(admin_client).get_data(as_text=True)).group(1)
    webhook = only_webhook(app)
    reset = admin_client.post(
        f"{BASE}/{webhook.id}/reset-secret", data={"csrf_token": admin_client.csrf_token}, headers=HTMX
    )
    second = SECRET_FIELD.search(reset.get_data(as_text=True)).group(1)
    assert first not in caplog.text and second not in caplog.text


def test_secret_response_is_never_cached(admin_client):
    """The page that shows a secret tells browsers and proxies not to store it."""
    assert create(admin_client).headers["Cache-Control"] == "no-store"


def test_table_lists_name_url_events_and_status_toggle(app, admin_client):
    """Each row shows name, endpoint URL, events, an on/off Status switch and its action menu."""
    create(admin_client)
    webhook = only_webhook(app)
    page = admin_client.get(BASE).get_data(as_text=True)
    row = re.search(rf'<tr id="webhook-row-{webhook.id}".*?</tr>', page, re.S).group(0)
    assert "Asset sync" in row and "https://hooks.example.com/netx" in row
    assert '<span class="badge">asset.create</span>' in row and '<span class="badge">folder.update</span>' in row
    assert 'role="switch" aria-checked="true"' in row and 'aria-label="Status of Asset sync"' in row
    assert f'hx-get="{BASE}/{webhook.id}/edit"' in row
    for action in ("Edit", "Reset secret", "Delete"):
        assert f">{action}</a>" in row


def test_htmx_gets_the_fragment_and_browsers_the_page(admin_client):
    """An HTMX request gets only the table fragment; a plain request the whole page that includes it."""
    fragment = admin_client.get(BASE, headers=HTMX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="webhooks-table"')
    page = admin_client.get(BASE).get_data(as_text=True)
    assert page.startswith("<!doctype html>") and 'id="webhooks-table"' in page


def test_edit_changes_name_url_events_and_enabled(app, admin_client):
    """Saving the Edit form changes every field, closes the dialog and refreshes the table."""
    create(admin_client)
    webhook = only_webhook(app)
    form = admin_client.get(f"{BASE}/{webhook.id}/edit", headers=HTMX).get_data(as_text=True)
    assert 'value="Asset sync"' in form and ">Save</button>" in form
    response = admin_client.post(
        f"{BASE}/{webhook.id}/edit",
        data={"name": "Renamed", "url": "https://other.example.com/h", "events": ["user.expire"],
              "csrf_token": admin_client.csrf_token},
        headers=HTMX,
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<dialog" not in body and "Renamed" in body and "saved." in body
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
    ).get_data(as_text=True)
    assert off.lstrip().startswith(f'<tr id="webhook-row-{webhook.id}"')
    assert 'aria-checked="false"' in off and "switch off" in off and ">Disabled<" in off
    assert only_webhook(app).enabled is False
    on = admin_client.post(
        f"{BASE}/{webhook.id}/toggle", data={"enabled": "1", "csrf_token": admin_client.csrf_token}, headers=HTMX
    ).get_data(as_text=True)
    assert 'aria-checked="true"' in on and "switch on" in on
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
    edit_page = admin_client.get(f"{BASE}/{webhook.id}/edit").get_data(as_text=True)
    assert "disabled automatically" in edit_page and "connection refused" in edit_page
    admin_client.post(f"{BASE}/{webhook.id}/toggle", data={"enabled": "1", "csrf_token": admin_client.csrf_token})
    assert only_webhook(app).disabled_reason is None


def test_delete_asks_for_confirmation_first(app, admin_client):
    """Delete's GET only asks; the confirming POST removes the webhook and its subscriptions."""
    create(admin_client)
    webhook = only_webhook(app)
    question = admin_client.get(f"{BASE}/{webhook.id}/delete", headers=HTMX).get_data(as_text=True)
    assert "Delete webhook?" in question and "cannot be undone" in question
    assert only_webhook(app) is not None
    done = admin_client.post(
        f"{BASE}/{webhook.id}/delete", data={"csrf_token": admin_client.csrf_token}, headers=HTMX
    ).get_data(as_text=True)
    assert "deleted." in done and "No webhooks yet" in done
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Webhook)) == 0
    assert admin_client.get(f"{BASE}/{webhook.id}/edit").status_code == 404


def test_reset_secret_shows_a_new_secret_once_and_replaces_the_old(app, admin_client):
    """Reset secret confirms first, then shows a new secret; only the new one is stored."""
    first = SECRET_FIELD.search(create(admin_client).get_data(as_text=True)).group(1)
    webhook = only_webhook(app)
    question = admin_client.get(f"{BASE}/{webhook.id}/reset-secret", headers=HTMX).get_data(as_text=True)
    assert "Reset secret?" in question
    with app.app_context():
        assert decrypt_secret(db.session.get(Webhook, webhook.id).secret_encrypted) == first
    body = admin_client.post(
        f"{BASE}/{webhook.id}/reset-secret", data={"csrf_token": admin_client.csrf_token}, headers=HTMX
    ).get_data(as_text=True)
    second = SECRET_FIELD.search(body).group(1)
    assert second != first and "old secret no longer works" in body
    with app.app_context():
        assert decrypt_secret(db.session.get(Webhook, webhook.id).secret_encrypted) == second


def test_secret_dialog_shows_the_standard_webhooks_form(admin_client):
    """The secret is also shown as whsec_ + base64 of its bytes for Standard Webhooks libraries."""
    import base64

    body = create(admin_client).get_data(as_text=True)
    secret = SECRET_FIELD.search(body).group(1)
    assert "whsec_" + base64.b64encode(secret.encode()).decode() in body


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
    assert response.status_code == 201 and "<!doctype html>" in response.get_data(as_text=True)
    webhook = only_webhook(app)
    toggled = admin_client.post(
        f"{BASE}/{webhook.id}/toggle", data={"enabled": "0", "csrf_token": admin_client.csrf_token}
    )
    assert toggled.status_code == 302
    assert "disabled." in admin_client.get(BASE).get_data(as_text=True)
    deleted = admin_client.post(f"{BASE}/{webhook.id}/delete", data={"csrf_token": admin_client.csrf_token})
    assert deleted.status_code == 302


def test_redis_unavailable_shows_an_alert_and_management_keeps_working(app, admin_client, caplog, redis_url):
    """With Redis down the page warns that messages are not processed, logs it, and webhooks can still be added."""
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    try:
        page = admin_client.get(BASE).get_data(as_text=True)
        assert "Redis unavailable." in page and "not being processed" in page
        assert "Redis unavailable" in caplog.text
        create(admin_client)
        assert only_webhook(app).name == "Asset sync"
        poll = admin_client.get(f"{BASE}/redis-status", headers=HTMX).get_data(as_text=True)
        assert "Redis unavailable." in poll
    finally:
        app.config["REDIS_URL"] = redis_url


def test_no_redis_alert_when_redis_answers(admin_client):
    """With Redis answering there is no alert, and the polled fragment is empty."""
    page = admin_client.get(BASE).get_data(as_text=True)
    assert "Redis unavailable." not in page
    poll = admin_client.get(f"{BASE}/redis-status", headers=HTMX).get_data(as_text=True)
    assert poll.lstrip().startswith('<div id="redis-alert"') and "alert-error" not in poll


def live_poll_url(page: str) -> str:
    return re.search(r'id="webhooks-live"[^>]*?hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")


def test_live_poll_answers_204_until_something_changes(app, admin_client):
    """The open Webhooks page's poll costs a 204 while nothing changed; an automatic disable redraws the table."""
    create(admin_client)
    webhook = only_webhook(app)
    poll = live_poll_url(admin_client.get(BASE).get_data(as_text=True))
    quiet = admin_client.get(poll, headers=HTMX)
    assert quiet.status_code == 204 and quiet.get_data() == b""
    with app.app_context():
        stored = db.session.get(Webhook, webhook.id)
        stored.enabled = False
        stored.disabled_reason = "All 6 delivery attempts of a message failed."
        db.session.commit()
    update = admin_client.get(poll, headers=HTMX).get_data(as_text=True)
    assert 'id="webhooks-table" class="panel table-panel" hx-swap-oob="true"' in update
    assert 'aria-checked="false"' in update and "Disabled automatically" in update
    assert admin_client.get(live_poll_url(update), headers=HTMX).status_code == 204


def test_live_poll_shows_and_clears_the_redis_alert(app, admin_client, redis_url):
    """When Redis stops answering the poll brings the alert; when it answers again the alert clears."""
    poll = live_poll_url(admin_client.get(BASE).get_data(as_text=True))
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    try:
        down = admin_client.get(poll, headers=HTMX).get_data(as_text=True)
        assert '<div id="redis-alert" hx-swap-oob="true">' in down and "Redis unavailable." in down
    finally:
        app.config["REDIS_URL"] = redis_url
    up = admin_client.get(live_poll_url(down), headers=HTMX).get_data(as_text=True)
    assert '<div id="redis-alert" hx-swap-oob="true">' in up and "Redis unavailable." not in up


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
    assert "“name” contains a NUL character" in response.get_data(as_text=True)
    assert only_webhook(app) is None
