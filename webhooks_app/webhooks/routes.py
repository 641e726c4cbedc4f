"""The Webhooks page (System › Integrations › API › Webhooks) and its dialogs."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from jinja2_fragments.flask import render_block, render_blocks

from ..auth.routes import admin_area
from ..events import EVENT_TYPES
from ..extensions import db
from ..help import readme_section
from ..htmx import is_htmx_request, render_out_of_band, render_page_or_fragment
from ..models import utcnow
from ..queue_alerts import QueueAlerts, queue_alerts
from ..redis_status import redis_is_available
from ..secrets_vault import whsec_form
from ..services import replay as replay_service
from ..services import secret_rotation
from ..services import webhooks as webhook_service
from ..services.activity import ERROR_LABELS, webhooks_fingerprint
from ..services.dispatch import enqueue_messages
from ..services.health import latest_attempt_id, webhook_health
from ..services.mail import mail_configured
from ..services.test_messages import await_sweeper, create_test_message, find_outcome
from .forms import ConfirmForm, EnabledForm, ReplayForm, ResetSecretForm, WebhookForm

bp = Blueprint("webhooks", __name__, url_prefix="/system/integrations/api/webhooks")
admin_area(bp)
PAGE = "webhooks/index.html"


@bp.context_processor
def event_catalogue():
    return {"event_descriptions": {event.name: event.description for event in EVENT_TYPES},
            "error_labels": ERROR_LABELS}


def table_context() -> dict:
    """What the webhooks table shows: the webhooks and their health at a glance."""
    return {"webhooks": webhook_service.list_webhooks(), "health": webhook_health()}


def load_webhook_or_404(webhook_id: int):
    try:
        return webhook_service.get_webhook(webhook_id)
    except webhook_service.WebhookNotFound:
        abort(404, f"Webhook {webhook_id} does not exist; it may have been deleted.")


def dialog_done(message: str):
    """Close the dialog with a message: for HTMX the table and message swapped out of band, else the page."""
    flash(message, "success")
    if is_htmx_request():
        return render_out_of_band(PAGE, ["table"], **table_context())
    return redirect(url_for("webhooks.index"))


def show_secret(webhook, secret: str, heading: str, status: int = 200):
    """Render the one and only showing of a webhook secret; for HTMX with the table redrawn out of band."""
    context = {"webhook": webhook, "secret": secret, "whsec_secret": whsec_form(secret), "heading": heading,
               "previous_until": secret_rotation.previous_secret_valid_until(webhook)}
    dialog, status = render_page_or_fragment("webhooks/secret.html", "content", status=status, **context)
    if is_htmx_request():
        dialog += render_block(PAGE, "table", oob=True, **table_context())
    return dialog, status


def form_dialog(form: WebhookForm, webhook=None):
    """The Add or Edit dialog; 422 with the errors beside their fields when a submitted form was refused."""
    previous_until = secret_rotation.previous_secret_valid_until(webhook) if webhook else None
    return render_page_or_fragment("webhooks/form.html", "content", status=422 if form.is_submitted() else 200,
                                   form=form, webhook=webhook, previous_until=previous_until)


@bp.get("")
def index():
    """List webhooks with their status toggles."""
    alerts = queue_alerts()
    return render_page_or_fragment(PAGE, "table", **table_context(), **alerts.context(), live=live_state(alerts),
                                   mail_configured=mail_configured())


@bp.get("/redis-status")
def redis_status():
    """The Redis-unavailable alert on its own."""
    return render_template("_redis_alert.html", redis_available=redis_is_available())


@bp.get("/help/redis")
def redis_help():
    """The README's Installing Redis section, linked from the Redis-unavailable alert."""
    return render_template("help/redis.html", blocks=readme_section("Installing Redis"),
                           redis_available=redis_is_available())


def live_state(alerts: QueueAlerts) -> str:
    """What the open Webhooks page shows: changes when a webhook, its health, Redis's availability or the batches
    waiting for the worker change."""
    # Every five minutes too: attempts leave the health column's 24-hour window as time passes.
    now = utcnow()
    return (f"{webhooks_fingerprint()}|{latest_attempt_id() or 0}|{now:%Y%m%d%H}{now.minute // 5}|"
            f"{alerts.state}")


@bp.get("/live")
def live():
    """Polled every 2 s by an open Webhooks page: 204 when nothing changed, else the table and alert to swap."""
    alerts = queue_alerts()
    state = live_state(alerts)
    if request.args.get("state") == state:
        return "", 204
    return (render_blocks(PAGE, ["table", "live_poller"], oob=True, **table_context(), live=state)
            + alerts.out_of_band())


@bp.route("/new", methods=["GET", "POST"])
def create():
    """Add a webhook, then show its secret once."""
    form = WebhookForm()
    if form.validate_on_submit():
        webhook, secret = webhook_service.create_webhook(form.to_fields())
        db.session.commit()
        return show_secret(webhook, secret, heading="Webhook created", status=201)
    return form_dialog(form)


@bp.route("/<id:webhook_id>/edit", methods=["GET", "POST"])
def edit(webhook_id: int):
    """Change a webhook's name, endpoint URL, events and Enabled box."""
    webhook = load_webhook_or_404(webhook_id)
    form = WebhookForm(obj=webhook, events=webhook.event_types)
    if form.validate_on_submit():
        webhook_service.update_webhook(webhook_id, form.to_fields())
        db.session.commit()
        return dialog_done(f"Webhook “{form.name.data}” saved.")
    return form_dialog(form, webhook)


@bp.post("/<id:webhook_id>/toggle")
def toggle(webhook_id: int):
    """Enable or disable a webhook from its Status toggle."""
    load_webhook_or_404(webhook_id)
    form = EnabledForm()
    if not form.validate_on_submit():
        abort(400, "The toggle request was not understood.")
    webhook = webhook_service.set_webhook_enabled(webhook_id, form.enabled.data)
    db.session.commit()
    if is_htmx_request():
        return render_block(PAGE, "row", webhook=webhook, health=webhook_health())
    flash(f"Webhook “{webhook.name}” {'enabled' if webhook.enabled else 'disabled'}.", "success")
    return redirect(url_for("webhooks.index"))


@bp.route("/<id:webhook_id>/delete", methods=["GET", "POST"])
def delete(webhook_id: int):
    """Ask for confirmation, then delete a webhook."""
    webhook = load_webhook_or_404(webhook_id)
    if ConfirmForm().validate_on_submit():
        name = webhook.name
        webhook_service.delete_webhook(webhook_id)
        db.session.commit()
        return dialog_done(f"Webhook “{name}” deleted.")
    return render_page_or_fragment("webhooks/delete.html", "content", webhook=webhook)


@bp.route("/<id:webhook_id>/reset-secret", methods=["GET", "POST"])
def reset_secret(webhook_id: int):
    """Ask how long the old secret stays valid, then replace it and show the new one once."""
    webhook = load_webhook_or_404(webhook_id)
    form = ResetSecretForm()
    if form.validate_on_submit():
        secret = secret_rotation.reset_secret(webhook_id, form.overlap_seconds())
        db.session.commit()
        return show_secret(webhook, secret, heading="New secret")
    return render_page_or_fragment("webhooks/reset_secret.html", "content",
                                   status=422 if form.is_submitted() else 200, webhook=webhook, form=form)


@bp.post("/<id:webhook_id>/previous-secret/expire")
def expire_previous_secret(webhook_id: int):
    """Expire now: end a reset secret's overlap; only the current secret signs deliveries from now on."""
    webhook = load_webhook_or_404(webhook_id)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The request to expire the previous secret was not understood.")
    expired = secret_rotation.expire_previous_secret(webhook_id)
    db.session.commit()
    if is_htmx_request():
        return render_block("webhooks/form.html", "previous_secret", webhook=webhook, previous_until=None,
                            just_expired=expired)
    flash("The previous secret no longer works." if expired else "There was no previous secret to expire.",
          "success")
    return redirect(url_for("webhooks.edit", webhook_id=webhook_id))


def replay_preview(webhook, form: ReplayForm) -> dict:
    """The dialog's count: how many events a replay since the form's time would send, or why it cannot say."""
    problems = [*form.since.errors, *form.tz_offset.errors]
    if problems:
        return {"count": None, "count_problem": problems[0]}
    try:
        since = replay_service.check_since(form.since_utc())
    except replay_service.ReplayError as error:
        return {"count": None, "count_problem": str(error)}
    return {"count": replay_service.missed_event_count(webhook.id, since), "count_problem": None, "since": since}


def replay_dialog(webhook, form: ReplayForm, status: int = 200, block: str = "content", default: bool = False):
    """The Replay missed events dialog (or its count alone), with the count for the time in the form."""
    return render_page_or_fragment("webhooks/replay.html", block, status=status, webhook=webhook, form=form,
                                   default=default, **replay_preview(webhook, form))


@bp.route("/<id:webhook_id>/replay", methods=["GET", "POST"])
def replay(webhook_id: int):
    """Replay missed events: ask Since (showing how many events it would send), then start the replay."""
    webhook = load_webhook_or_404(webhook_id)
    form = ReplayForm()
    if request.method == "GET":
        form.since.data = replay_service.default_since(webhook)
        return replay_dialog(webhook, form, default=True)
    if form.validate_on_submit():
        try:
            started = replay_service.create_replay(webhook_id, form.since_utc(), current_user.email)
        except replay_service.ReplayError as error:
            db.session.rollback()
            form.since.errors.append(str(error))
        else:
            db.session.commit()
            queued = replay_service.start_replay(started.id)
            return render_page_or_fragment("webhooks/replay_started.html", "content", webhook=webhook,
                                           replay=started, queued=queued)
    return replay_dialog(webhook, form, status=422)


@bp.get("/<id:webhook_id>/replay/count")
def replay_count(webhook_id: int):
    """The dry run: how many events a replay since `since` would send (the dialog's count, refreshed as it changes)."""
    webhook = load_webhook_or_404(webhook_id)
    form = ReplayForm(formdata=request.args, meta={"csrf": False})
    form.validate()
    return replay_dialog(webhook, form, block="count")


@bp.post("/<id:webhook_id>/test")
def send_test(webhook_id: int):
    """Queue a WEBHOOK_TEST message for the worker and answer at once; the dialog polls for the endpoint's answer."""
    webhook = load_webhook_or_404(webhook_id)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The test request was not understood.")
    message_id = create_test_message(webhook_id, current_user.id)
    db.session.commit()
    queued = enqueue_messages([message_id])
    if not queued:
        await_sweeper(message_id)
        db.session.commit()
    return render_test(webhook, find_outcome(webhook_id, message_id), queued=queued)


@bp.get("/<id:webhook_id>/test/<id:message_id>")
def test_result(webhook_id: int, message_id: int):
    """A test message's outcome, read from its row and attempt: 204 to HTMX polls while it waits for the worker."""
    webhook = load_webhook_or_404(webhook_id)
    outcome = find_outcome(webhook_id, message_id)
    if outcome is None:
        abort(404, f"Test message {message_id} of webhook {webhook_id} is not in the log.")
    if outcome.pending and is_htmx_request():
        return "", 204
    return render_test(webhook, outcome, queued=True)


def render_test(webhook, outcome, queued: bool):
    """The result area alone for the secret dialog's Test button and the result's poll, else the Test dialog."""
    context = {"webhook": webhook, "outcome": outcome, "queued": queued, "error_labels": ERROR_LABELS}
    if is_htmx_request() and request.headers.get("HX-Target", "").startswith("test-result"):
        return render_block("webhooks/test.html", "result", **context)
    return render_page_or_fragment("webhooks/test.html", "content", **context)
