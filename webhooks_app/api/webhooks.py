"""/api/v1/webhooks: list, create, read, change (If-Match), delete, reset the secret and test, as the UI does.

Bodies go through the Add/Edit webhook form (webhooks/forms.py), so the rules and their messages are the UI's.
"""

import hashlib
import json

from flask import jsonify, request, url_for
from werkzeug.datastructures import MultiDict

from ..extensions import db
from ..models import Message
from ..secrets_vault import whsec_form
from ..services import webhooks as webhook_service
from ..services.api_tokens import WEBHOOKS_READ, WEBHOOKS_WRITE
from ..services.dispatch import enqueue_messages
from ..services.secret_rotation import OVERLAP_CHOICES, previous_secret_valid_until
from ..services.secret_rotation import reset_secret as reset_secret_of
from ..services.test_messages import await_sweeper, create_test_message
from ..webhooks.forms import WebhookForm
from .auth import OPTIONAL_BODY, after_commit, management, note
from .blueprint import bp
from .errors import ApiError
from .openapi import BODY_ERRORS, responses, spec
from .schemas import (
    IfMatchOptional,
    IfMatchRequired,
    ResetSecret,
    TestQueued,
    Webhook,
    WebhookChange,
    WebhookCreate,
    WebhookList,
    WebhookWithSecret,
)

API_TEST_USER_ID = 0  # a test message sent through the API was caused by no user
TAGS = ["webhooks"]


def iso(moment) -> str | None:
    """A stored UTC time as RFC 3339."""
    return moment.isoformat() + "Z" if moment is not None else None


def webhook_json(webhook) -> dict:
    return {
        "id": webhook.id, "name": webhook.name, "url": webhook.url, "events": webhook.event_types,
        "enabled": webhook.enabled, "disabledReason": webhook.disabled_reason, "disabledAt": iso(webhook.disabled_at),
        "previousSecretExpiresAt": iso(previous_secret_valid_until(webhook)),
        "createdAt": iso(webhook.created_at), "updatedAt": iso(webhook.updated_at),
    }


def etag_of(body: dict) -> str:
    """A strong validator of the webhook's representation (unquoted)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def webhook_response(webhook, status: int = 200, secret: str | None = None):
    body = webhook_json(webhook)
    etag = etag_of(body)
    if secret is not None:
        body.update(secret=secret, standardWebhooksSecret=whsec_form(secret))
    response = jsonify(body)
    response.status_code = status
    response.set_etag(etag)
    return response


def load(webhook_id: int, lock: bool = False):
    """The webhook (locked for a change when `lock`), or 404."""
    try:
        return webhook_service.lock_webhook(webhook_id) if lock else webhook_service.get_webhook(webhook_id)
    except webhook_service.WebhookNotFound:
        raise ApiError(404, "webhook_id", f"webhook {webhook_id} does not exist; it may have been deleted") from None


def check_if_match(webhook, required: bool) -> None:
    """412 unless If-Match names the webhook's current ETag (or is `*`); 428 when it is required and missing."""
    if "If-Match" not in request.headers:
        if required:
            raise ApiError(428, "If-Match", "send the webhook's ETag, as read with GET, in If-Match, so that a "
                                            "change made since by someone else is not overwritten")
        return
    current = etag_of(webhook_json(webhook))
    if not request.if_match.star_tag and not request.if_match.contains(current):
        raise ApiError(412, "If-Match", f'webhook {webhook.id} changed since that ETag was read (it is now '
                                        f'"{current}"); read it again and re-apply your change')


def checked_fields(values: dict) -> webhook_service.WebhookFields:
    """Run the fields through the webhook form: its rules, its messages (422 naming the first field refused)."""
    pairs = [(name, values[name]) for name in ("name", "url") if values.get(name) is not None]
    pairs += [("events", event) for event in values.get("events") or []]
    if values.get("enabled"):
        pairs.append(("enabled", "y"))
    form = WebhookForm(formdata=MultiDict(pairs), meta={"csrf": False})
    if not form.validate():
        for field in form:
            if field.errors:
                raise ApiError(422, field.name, field.errors[0])
    return form.to_fields()


@bp.get("/webhooks")
@management(WEBHOOKS_READ)
@spec.validate(resp=responses(HTTP_200=WebhookList), tags=TAGS)
def list_webhooks():
    """List the webhooks, oldest first."""
    return jsonify({"data": [webhook_json(webhook) for webhook in webhook_service.list_webhooks()]})


@bp.post("/webhooks")
@management(WEBHOOKS_WRITE, body=True)
@spec.validate(json=WebhookCreate, resp=responses(409, *BODY_ERRORS, HTTP_201=WebhookWithSecret), tags=TAGS)
def create_webhook():
    """Add a webhook.

    The answer holds its secret: the only time it is shown. The fields follow the Add webhook form's rules and
    messages (a name, an HTTPS URL, at least one event).
    """
    values = {"enabled": True, **request.context.json.model_dump(exclude_unset=True)}
    webhook, secret = webhook_service.create_webhook(checked_fields(values))
    note(f"created webhook {webhook.id} “{webhook.name}”")
    response = webhook_response(webhook, status=201, secret=secret)
    response.headers["Location"] = url_for("api.read_webhook", webhook_id=webhook.id)
    return response


@bp.get("/webhooks/<id:webhook_id>")
@management(WEBHOOKS_READ)
@spec.validate(resp=responses(404, HTTP_200=Webhook), tags=TAGS)
def read_webhook(webhook_id: int):
    """Read a webhook, with its ETag for a later change."""
    return webhook_response(load(webhook_id))


@bp.patch("/webhooks/<id:webhook_id>")
@management(WEBHOOKS_WRITE, body=True)
@spec.validate(json=WebhookChange, headers=IfMatchRequired,
               resp=responses(404, 409, 412, 428, *BODY_ERRORS, HTTP_200=Webhook), tags=TAGS)
def change_webhook(webhook_id: int):
    """Change a webhook's name, URL, events or enabled state.

    Send the ETag read with GET in If-Match: 412 when the webhook changed since, 428 without If-Match. Fields left
    out keep their values; the result must pass the Edit form's rules. Enabling clears an automatic disable.
    """
    webhook = load(webhook_id, lock=True)
    check_if_match(webhook, required=True)
    changes = request.context.json.model_dump(exclude_unset=True)
    webhook_service.update_webhook(webhook_id, checked_fields({**webhook_json(webhook), **changes}))
    note(f"changed webhook {webhook_id} ({', '.join(sorted(changes)) or 'nothing'})")
    return webhook_response(webhook)


@bp.delete("/webhooks/<id:webhook_id>")
@management(WEBHOOKS_WRITE)
@spec.validate(headers=IfMatchOptional, resp=responses(404, 409, 412, HTTP_204=None), tags=TAGS)
def delete_webhook(webhook_id: int):
    """Delete a webhook (only if it still has the If-Match ETag, when given)."""
    webhook = load(webhook_id, lock=True)
    check_if_match(webhook, required=False)
    note(f"deleted webhook {webhook_id} “{webhook.name}”")
    webhook_service.delete_webhook(webhook_id)
    return "", 204


@bp.post("/webhooks/<id:webhook_id>/reset-secret")
@management(WEBHOOKS_WRITE, body=OPTIONAL_BODY)
@spec.validate(json=ResetSecret, resp=responses(404, 409, *BODY_ERRORS, HTTP_200=WebhookWithSecret), tags=TAGS)
def reset_secret(webhook_id: int):
    """Replace a webhook's secret: the new one is in this answer only.

    The old one stops working at once, or (`oldSecretValidFor`) stays valid for 1 hour, 24 hours or 7 days, as the
    Reset secret dialog offers: meanwhile messages carry a signature with each secret, and
    `previousSecretExpiresAt` says until when. DELETE …/previous-secret ends the overlap early.
    """
    load(webhook_id, lock=True)
    overlap = request.context.json.oldSecretValidFor if request.context.json else 0
    secret = reset_secret_of(webhook_id, overlap)
    labels = dict(OVERLAP_CHOICES)
    note(f"reset the secret of webhook {webhook_id}" + (f" (old one valid for {labels[overlap]})" if overlap else ""))
    return webhook_response(webhook_service.get_webhook(webhook_id), secret=secret)


@bp.post("/webhooks/<id:webhook_id>/test")
@management(WEBHOOKS_WRITE)
@spec.validate(resp=responses(404, 409, HTTP_202=TestQueued), tags=TAGS)
def test_webhook(webhook_id: int):
    """Send a WEBHOOK_TEST message (userId 0) through the worker, as the Test button does.

    It is tried once, logged, and never counts toward disabling the webhook; read its outcome at the Location.
    """
    load(webhook_id, lock=True)  # not deleted before its test message is stored
    message_id = create_test_message(webhook_id, API_TEST_USER_ID)
    message_uuid = db.session.get(Message, message_id).message_uuid
    note(f"sent a test message to webhook {webhook_id}")
    after_commit(lambda: queue_test(message_id))
    response = jsonify({"messageId": message_uuid, "status": "queued"})
    response.status_code = 202
    response.headers["Location"] = url_for("api.read_message", message_uuid=message_uuid)
    return response


def queue_test(message_id: int) -> None:
    """Put the committed test message on the queue; with Redis down, leave it to the scheduler's sweeper."""
    if not enqueue_messages([message_id]):
        await_sweeper(message_id)
        db.session.commit()

