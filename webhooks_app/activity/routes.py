"""Activity log pages: one per webhook and one across all webhooks, live while open."""

import json
from datetime import datetime, timedelta

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from jinja2_fragments.flask import render_block, render_blocks
from markupsafe import Markup

from ..auth.routes import admin_area
from ..extensions import db
from ..htmx import is_htmx_request, render_page_or_fragment
from ..models import MessageStatus, Webhook, utcnow
from ..services import activity
from ..services.dispatch import request_batches
from ..services.send_again import SendAgainRefused, send_again, send_again_problem, sent_again_as
from ..services.webhooks import WebhookNotFound, get_webhook, list_webhooks
from .forms import LogQueryForm, PollForm

bp = Blueprint("activity", __name__, url_prefix="/system/integrations/api")
admin_area(bp)
PAGE = "activity/log.html"
CLOCK_MARGIN = timedelta(seconds=5)
TIME_ELEMENT = Markup('<time datetime="{}Z" title="{} UTC" data-local>{} UTC</time>')


def _webhook_or_404(webhook_id: int):
    try:
        return get_webhook(webhook_id)
    except WebhookNotFound:
        abort(404, f"Webhook {webhook_id} does not exist; it may have been deleted.")


def _read_query(form_class):
    form = form_class(formdata=request.args)
    if not form.validate():
        problems = "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items())
        abort(400, f"The log address is not understood ({problems}).")
    return form


def _log_context(webhook, form: LogQueryForm) -> dict:
    webhook_id = webhook.id if webhook else None
    status = form.status.data or None
    now = utcnow()
    page = activity.log_page(webhook_id, status, before=form.before.data, after=form.after.data,
                             oldest=bool(form.oldest.data))
    return {
        "webhook": webhook,
        "webhook_id": webhook_id,
        "form": form,
        "status_filter": status or "",
        "page": page,
        "counts_day": activity.status_counts(webhook_id, now - timedelta(hours=24)),
        "counts_month": activity.status_counts(webhook_id, now - timedelta(days=30)),
        "hours": activity.hourly_outcomes(webhook_id, now),
        "poll": _poll_state(page.messages, live=page.is_newest, rendered_at=now),
        "labels": MessageStatus.LABELS,
        "webhook_names": {} if webhook else webhook_names(),
    }


def webhook_names() -> dict[int, str]:
    return {webhook.id: webhook.name for webhook in list_webhooks()}


def _poll_state(messages, live: bool, rendered_at: datetime) -> dict:
    return {
        "newest": max((m.id for m in messages), default=0),
        "pending": ",".join(str(m.id) for m in messages if m.status in MessageStatus.PENDING),
        # A margin covers rows written by hosts whose clocks run a little behind this one.
        "since": (rendered_at - CLOCK_MARGIN).isoformat(),
        "live": "1" if live else "",
    }


@bp.get("/webhooks/<id:webhook_id>/log")
def webhook_log(webhook_id: int):
    """A webhook's messages, newest first, with the Status filter, summary and live statuses."""
    webhook = _webhook_or_404(webhook_id)
    context = _log_context(webhook, _read_query(LogQueryForm))
    return render_page_or_fragment(PAGE, "log", **context)


@bp.get("/activity")
def all_activity():
    """Messages of every webhook, for seeing everything failing at once."""
    context = _log_context(None, _read_query(LogQueryForm))
    return render_page_or_fragment(PAGE, "log", **context)


def render_details(message, columns: int, notice: str | None = None):
    """A message's details row: payload, attempts, where it came from and Send again."""
    webhook = db.session.get(Webhook, message.webhook_id) if message.webhook_id is not None else None
    return render_block(PAGE, "details", message=message, payload=activity.payload_as_sent(message),
                        labels=MessageStatus.LABELS, error_labels=activity.ERROR_LABELS,
                        columns=min(max(columns, 1), 8), now=utcnow(), sent_again=sent_again_as(message.id),
                        send_again_problem=send_again_problem(message, webhook), notice=notice)


@bp.get("/activity/messages/<id:message_id>")
def message_details(message_id: int):
    """The payload sent (token masked), every attempt of one message, and its replays."""
    message = activity.message_detail(message_id)
    if message is None:
        abort(404, f"Message {message_id} is no longer in the log.")
    return render_details(message, request.args.get("columns", default=4, type=int))


@bp.post("/activity/messages/<id:message_id>/send-again")
def send_message_again(message_id: int):
    """Send again: queue a new message for the same event and webhook; the original stays as it was."""
    if not FlaskForm().validate_on_submit():
        abort(400, "The Send again request was not understood.")
    if activity.message_detail(message_id) is None:
        abort(404, f"Message {message_id} is no longer in the log.")
    try:
        result = send_again(message_id)
    except SendAgainRefused as error:
        db.session.rollback()
        abort(409, str(error))
    db.session.commit()
    if not result.already_pending:
        request_batches([result.webhook_id])
    notice = (f"A copy of this event is already queued as {result.message_uuid}." if result.already_pending
              else f"Queued as a new message, {result.message_uuid}: it appears at the top of the log.")
    if is_htmx_request():
        return render_details(activity.message_detail(message_id), request.form.get("columns", default=4, type=int),
                              notice=notice)
    flash(notice, "success")
    return redirect(url_for("activity.webhook_log", webhook_id=result.webhook_id))


@bp.app_template_global()
def message_url(message_id: int, webhook_id: int | None) -> str:
    """Where a message's row is: the page of its webhook's log (else of all activity) that starts with it."""
    if webhook_id is None:
        return url_for("activity.all_activity", before=message_id + 1, _anchor=f"message-row-{message_id}")
    return url_for("activity.webhook_log", webhook_id=webhook_id, before=message_id + 1,
                   _anchor=f"message-row-{message_id}")


@bp.app_template_filter("local_time")
def local_time(moment: datetime | None) -> Markup:
    """A UTC instant as a <time> element that app.js rewrites into the viewer's time zone, or a dash."""
    if moment is None:
        return Markup("—")
    shown = moment.strftime("%Y-%m-%d %H:%M:%S")
    return TIME_ELEMENT.format(moment.isoformat(), shown, shown)


@bp.app_template_filter("pretty_json")
def pretty_json(value) -> str:
    """Indented JSON as text (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@bp.get("/activity/poll")
def poll():
    """Live updates for an open log page: 204 when nothing changed, else the rows to redraw."""
    form = _read_query(PollForm)
    webhook_id = form.webhook.data
    pending = form.pending_ids()
    try:
        since = datetime.fromisoformat(form.since.data) if form.since.data else utcnow()
    except ValueError:
        abort(400, "The log address is not understood (since).")
    now = utcnow()
    changes = activity.log_changes(webhook_id, form.status.data or None, form.newest.data or 0, pending, since,
                                   include_new=bool(form.live.data))
    if not changes.changed and not changes.new:
        return "", 204
    still_pending = {m.id for m in changes.changed if m.status in MessageStatus.PENDING}
    untouched = [i for i in pending if i not in {m.id for m in changes.changed}]
    new_pending = [m.id for m in changes.new if m.status in MessageStatus.PENDING]
    state = {
        "newest": max([form.newest.data or 0, *(m.id for m in changes.new)]),
        "pending": ",".join(str(i) for i in sorted({*untouched, *still_pending, *new_pending})),
        "since": (now - CLOCK_MARGIN).isoformat(),
        "live": form.live.data or "",
    }
    return render_blocks(PAGE, ["poll_rows", "poller"], oob=True, changes=changes, poll=state, webhook_id=webhook_id,
                         status_filter=form.status.data or "", show_webhook=webhook_id is None,
                         was_empty=not form.newest.data, labels=MessageStatus.LABELS,
                         webhook_names={} if webhook_id else webhook_names())


@bp.app_template_global()
def log_url(webhook, **params) -> str:
    """The URL of a log page (a webhook's or all activity) with its query kept."""
    params = {key: value for key, value in params.items() if value not in (None, "")}
    if webhook is not None:
        return url_for("activity.webhook_log", webhook_id=webhook.id, **params)
    return url_for("activity.all_activity", **params)


