"""Reset secret with an overlap: while the old secret stays valid every delivery carries one Standard Webhooks
signature per valid secret (checked with the standardwebhooks library against a real HTTPS receiver and the
real worker), the token is the new secret, Expire now ends the overlap, and an expired secret leaves the database."""

from datetime import timedelta

import pytest
from api.management import WEBHOOKS, call, scoped_token
from conftest import wait_for
from markup import parse, select_all, select_one, text_of
from sqlalchemy import update
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks_app.extensions import db
from webhooks_app.models import Webhook, utcnow
from webhooks_app.secrets_vault import decrypt_secret, whsec_form
from webhooks_app.services.intake import emit_event
from webhooks_app.services.retention import prune_log
from webhooks_app.services.webhooks import WebhookFields, create_webhook

BASE = "/system/integrations/api/webhooks"
HTMX = {"HX-Request": "true"}
DAY = 86400


def add_webhook(app, url: str) -> tuple[int, str]:
    with app.app_context():
        webhook, secret = create_webhook(WebhookFields("Rotating", url, ("asset.create",), True))
        db.session.commit()
        return webhook.id, secret


def reset(admin_client, webhook_id: int, overlap: str | None):
    data = {"csrf_token": admin_client.csrf_token, **({"overlap": overlap} if overlap is not None else {})}
    return admin_client.post(f"{BASE}/{webhook_id}/reset-secret", data=data, headers=HTMX)


def deliver_one(app, receiver, path: str, asset_id: int):
    """Emit an event and return its delivery to `path` (headers lower-cased)."""
    before = len([r for r in receiver.received if r.path == path])
    with app.app_context():
        emit_event({"type": "asset.create", "assetId": asset_id, "userId": 1})
    delivery = [r for r in receiver.wait_for_count(before + 1, path) if r.path == path][-1]
    return delivery, {key.lower(): value for key, value in delivery.headers.items()}


def stored(app, webhook_id: int) -> Webhook:
    with app.app_context():
        webhook = db.session.get(Webhook, webhook_id)
        db.session.expunge(webhook)
        return webhook


def end_overlap(app, webhook_id: int) -> None:
    """Make the webhook's replaced secret one whose overlap ended a moment ago."""
    with app.app_context():
        db.session.execute(update(Webhook).where(Webhook.id == webhook_id)
                           .values(previous_secret_expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


def verifies(secret: str, delivery, headers) -> bool:
    try:
        StandardWebhook(whsec_form(secret)).verify(delivery.body, headers)
    except WebhookVerificationError:
        return False
    return True


def test_during_the_overlap_deliveries_verify_with_the_old_and_the_new_secret(app, admin_client, receiver,
                                                                                delivery_processes):
    """Reset secret with "24 hours": the dialog says until when the old secret works; a delivery's
    webhook-signature holds two space-separated v1 signatures, verified by standardwebhooks with the old secret
    and with the new one; the body's token is the new secret; the old secret is stored encrypted."""
    webhook_id, old = add_webhook(app, receiver.url("/overlap"))
    question = admin_client.get(f"{BASE}/{webhook_id}/reset-secret", headers=HTMX)
    choices = {radio["value"]: text_of(select_one(question, f"label[for='{radio['id']}']"))
               for radio in select_all(question, "input[name=overlap]")}
    assert choices == {"0": "Stop at once", "3600": "1 hour", "86400": "24 hours", "604800": "7 days"}
    assert select_one(question, "input[name=overlap][checked]")["value"] == "0"
    assert text_of(select_one(question, "fieldset legend")) == "Old secret stays valid"

    body = reset(admin_client, webhook_id, str(DAY))
    new = select_one(body, "textarea#webhook-secret").get_text()
    assert new != old and "The old secret stays valid until" in text_of(body)
    webhook = stored(app, webhook_id)
    assert old not in webhook.previous_secret_encrypted
    with app.app_context():
        assert decrypt_secret(webhook.previous_secret_encrypted) == old
    assert timedelta(hours=23, minutes=59) < webhook.previous_secret_expires_at - utcnow() <= timedelta(hours=24)

    delivery, headers = deliver_one(app, receiver, "/overlap", 1)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(signature.startswith("v1,") for signature in signatures)
    assert verifies(new, delivery, headers) and verifies(old, delivery, headers)
    assert not verifies("an-unrelated-secret-of-27-chars", delivery, headers)
    assert delivery.json()["token"] == new


def test_stop_at_once_is_the_default_and_the_old_secret_fails_at_once(app, admin_client, receiver,
                                                                       delivery_processes):
    """A reset that does not choose (the seed's behaviour) keeps no old secret: one signature, made with the new
    secret; the old secret no longer verifies."""
    webhook_id, old = add_webhook(app, receiver.url("/at-once"))
    body = reset(admin_client, webhook_id, None)
    new = select_one(body, "textarea#webhook-secret").get_text()
    assert "the old secret no longer works" in text_of(body)
    assert stored(app, webhook_id).previous_secret_encrypted is None
    delivery, headers = deliver_one(app, receiver, "/at-once", 2)
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert verifies(new, delivery, headers) and not verifies(old, delivery, headers)


def test_edit_dialog_shows_the_overlap_and_expire_now_ends_it(app, admin_client, receiver, delivery_processes):
    """The edit dialog says "Previous secret valid until …" with Expire now (a POST with CSRF); Expire now removes
    the old secret from the database, and the next delivery is signed with the new secret only."""
    webhook_id, old = add_webhook(app, receiver.url("/expire"))
    new = select_one(reset(admin_client, webhook_id, "3600"), "textarea#webhook-secret").get_text()
    dialog = admin_client.get(f"{BASE}/{webhook_id}/edit", headers=HTMX)
    notice = select_one(dialog, "#previous-secret")
    assert text_of(notice).startswith("Previous secret valid until")
    form = select_one(notice, "form")
    assert form["action"] == f"{BASE}/{webhook_id}/previous-secret/expire" and form["hx-post"] == form["action"]
    assert select_one(form, "input[name=csrf_token]")["value"]

    assert admin_client.post(form["action"], headers=HTMX).status_code == 400  # no CSRF token: refused
    assert stored(app, webhook_id).previous_secret_encrypted is not None
    answer = admin_client.post(form["action"], data={"csrf_token": admin_client.csrf_token}, headers=HTMX)
    assert "The previous secret no longer works" in text_of(answer)
    webhook = stored(app, webhook_id)
    assert (webhook.previous_secret_encrypted, webhook.previous_secret_expires_at) == (None, None)
    assert select_all(admin_client.get(f"{BASE}/{webhook_id}/edit", headers=HTMX), "#previous-secret") == []

    delivery, headers = deliver_one(app, receiver, "/expire", 3)
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert verifies(new, delivery, headers) and not verifies(old, delivery, headers)


def test_after_the_overlap_the_old_secret_leaves_the_database(app, admin_client, receiver, delivery_processes):
    """Once the overlap is over the old secret no longer signs: the delivery that reads it past its expiry removes
    it from its webhook's row, and the scheduler's periodic clean-up removes it from a webhook with no traffic."""
    busy_id, busy_old = add_webhook(app, receiver.url("/busy"))
    quiet_id, _ = add_webhook(app, receiver.url("/quiet"))
    busy_new = select_one(reset(admin_client, busy_id, "3600"), "textarea#webhook-secret").get_text()
    reset(admin_client, quiet_id, "3600")
    end_overlap(app, busy_id)
    delivery, headers = deliver_one(app, receiver, "/busy", 4)
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert verifies(busy_new, delivery, headers) and not verifies(busy_old, delivery, headers)
    wait_for(lambda: stored(app, busy_id).previous_secret_encrypted is None, timeout=10,
             message="the delivery to clear the expired secret")
    assert stored(app, busy_id).previous_secret_expires_at is None

    assert stored(app, quiet_id).previous_secret_encrypted is not None  # still within its hour
    end_overlap(app, quiet_id)
    wait_for(lambda: stored(app, quiet_id).previous_secret_encrypted is None, timeout=10,
             message="the scheduler to clear the expired secret")


def test_the_nightly_prune_removes_expired_secrets_too(app, admin_client):
    """The maintenance actor's prune also removes replaced secrets whose overlap is over, and keeps valid ones."""
    expired_id, _ = add_webhook(app, "https://hooks.example.com/expired")
    valid_id, _ = add_webhook(app, "https://hooks.example.com/valid")
    for webhook_id in (expired_id, valid_id):
        reset(admin_client, webhook_id, "604800")
    end_overlap(app, expired_id)
    with app.app_context():
        prune_log(30)
    assert stored(app, expired_id).previous_secret_encrypted is None
    assert stored(app, valid_id).previous_secret_encrypted is not None


@pytest.mark.parametrize("overlap", ["5", "forever", ""])
def test_an_unknown_overlap_is_refused_beside_the_choice(app, admin_client, overlap):
    """A value that is not one of the four choices gets the dialog back (422) naming them; the secret is kept."""
    webhook_id, old = add_webhook(app, "https://hooks.example.com/x")
    response = reset(admin_client, webhook_id, overlap)
    assert response.status_code == 422
    assert "Choose how long the old secret stays valid: Stop at once, 1 hour, 24 hours, 7 days." in text_of(
        select_one(parse(response), "#overlap-errors"))
    with app.app_context():
        assert decrypt_secret(db.session.get(Webhook, webhook_id).secret_encrypted) == old


@pytest.mark.parametrize("change", ["edit", "toggle", "api"])
def test_any_change_to_the_webhook_removes_an_expired_secret(app, admin_client, change):
    """The Edit dialog, the Status toggle and the API's PATCH each remove a replaced secret whose overlap is over
    (the change to the webhook runs the same service function); a valid one stays."""
    webhook_id, _ = add_webhook(app, "https://hooks.example.com/changed")
    valid_id, _ = add_webhook(app, "https://hooks.example.com/still-valid")
    for each in (webhook_id, valid_id):
        reset(admin_client, each, "3600")
    end_overlap(app, webhook_id)
    for each in (webhook_id, valid_id):
        if change == "edit":
            answer = admin_client.post(f"{BASE}/{each}/edit", headers=HTMX, data={
                "csrf_token": admin_client.csrf_token, "name": "Renamed", "url": stored(app, each).url,
                "events": "asset.create", "enabled": "y"})
        elif change == "toggle":
            answer = admin_client.post(f"{BASE}/{each}/toggle", headers=HTMX,
                                       data={"csrf_token": admin_client.csrf_token})
        else:
            answer = call(app.test_client(), "PATCH", f"{WEBHOOKS}/{each}", scoped_token(app),
                          json={"name": "Renamed"}, headers={"If-Match": "*"})
        assert answer.status_code == 200, answer.get_data(as_text=True)
    assert stored(app, webhook_id).previous_secret_encrypted is None
    assert stored(app, webhook_id).previous_secret_expires_at is None
    assert stored(app, valid_id).previous_secret_encrypted is not None
