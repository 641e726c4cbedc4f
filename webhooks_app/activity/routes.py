"""Activity log pages: one per webhook and one across all webhooks, live while open."""

import json
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from jinja2_fragments.flask import render_block, render_blocks
from markupsafe import Markup
from wtforms.fields.choices import SelectChoice

from ..auth.routes import admin_area
from ..extensions import db
from ..htmx import is_htmx_request, render_page_or_fragment
from ..models import MessageStatus, Webhook, utcnow
from ..queue_alerts import queue_alerts
from ..services import activity, log_filters
from ..services.dispatch import request_batches
from ..services.log_filters import TIME_RANGES, LogFilter, first_message_id_since
from ..services.send_again import SendAgainRefused, send_again, send_again_problem, sent_again_as
from ..services.webhooks import WebhookNotFound, get_webhook, list_webhooks
from .forms import AllActivityForm, LogQueryForm, PollForm

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


def _read_query(form_class, webhook_choices=None):
    """The URL's query as a form; values only a hand-edited URL could hold (the pager's, the poller's) are a 400."""
    form = form_class(formdata=request.args)
    if webhook_choices is not None:
        form.webhook.choices = webhook_choices
    if form.validate() or (isinstance(form, LogQueryForm) and form.filter_errors()):
        return form
    problems = "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items())
    abort(400, f"The log address is not understood ({problems}).")


def _log_filter(form: LogQueryForm, webhook_id: int | None, now: datetime) -> LogFilter:
    since = TIME_RANGES.get(form.range.data or "")
    return LogFilter(webhook_id=webhook_id, status=form.status.data or None, event_type=form.type.data or None,
                     search=form.search(),
                     first_id=first_message_id_since(now - since) if since is not None else None).with_search_resolved()


def _log_context(webhook, form: LogQueryForm) -> dict:
    webhook_id = webhook.id if webhook else None
    now = utcnow()
    webhooks = {} if webhook else {w.id: w for w in list_webhooks()}
    if form.errors:
        shown_webhook, page, log_filter = webhook_id, activity.LogPage([], None, None, False), LogFilter(webhook_id)
    else:
        shown_webhook = webhook_id if webhook else (int(form.webhook.data) if form.webhook.data else None)
        log_filter = _log_filter(form, shown_webhook, now)
        page = activity.log_page(log_filter, before=form.before.data, after=form.after.data,
                                 oldest=bool(form.oldest.data))
    alerts = queue_alerts()
    return {
        "webhook": webhook,
        "webhook_id": webhook_id,
        "form": form,
        "filters": form.filters() if not form.errors else {},
        "log_filter": log_filter,
        "max_found": log_filters.MAX_FOUND,
        "status_filter": form.status.data or "",
        "page": page,
        # All activity's summary counts every message of 30 days: the page asks for it on its own (summary()).
        **(_summary_context(webhook_id, now) if webhook else {"summary_deferred": True}),
        "poll": _poll_state(page.messages, live=page.is_newest and not form.errors, rendered_at=now,
                            summary=activity.summary_fingerprint(webhook_id, now),
                            alerts=alerts.state),
        "labels": MessageStatus.LABELS,
        "webhooks_by_id": webhooks,
        **alerts.context(),
    }


def _summary_context(webhook_id: int | None, now: datetime) -> dict:
    return {"counts_day": activity.status_counts(webhook_id, now - timedelta(hours=24)),
            "counts_month": activity.status_counts(webhook_id, now - timedelta(days=30)),
            "hours": activity.hourly_outcomes(webhook_id, now), "labels": MessageStatus.LABELS}


@bp.get("/activity/summary")
def summary():
    """All activity's counts and hourly chart, fetched by the page once it is shown (a page of its own without
    JavaScript)."""
    context = _summary_context(None, utcnow())
    if is_htmx_request():
        return render_block(PAGE, "summary", **context)
    return render_template("activity/summary.html", **context)


def _poll_state(messages, live: bool, rendered_at: datetime, summary: str, alerts: str) -> dict:
    return {
        "newest": max((m.id for m in messages), default=0),
        "pending": ",".join(str(m.id) for m in messages if m.status in MessageStatus.PENDING),
        # A margin covers rows written by hosts whose clocks run a little behind this one.
        "since": (rendered_at - CLOCK_MARGIN).isoformat(),
        "live": "1" if live else "",
        "summary": summary,
        "redis": alerts,
    }


def _render_log(webhook, form):
    context = _log_context(webhook, form)
    return render_page_or_fragment(PAGE, "log", status=422 if form.errors else 200, **context)


@bp.get("/webhooks/<id:webhook_id>/log")
def webhook_log(webhook_id: int):
    """A webhook's messages, newest first, with the Status filter, summary and live statuses."""
    webhook = _webhook_or_404(webhook_id)
    return _render_log(webhook, _read_query(LogQueryForm))


@bp.get("/activity")
def all_activity():
    """Messages of every webhook, for seeing everything failing at once."""
    return _render_log(None, _read_query(AllActivityForm, webhook_choices()))


def webhook_choices() -> list[SelectChoice]:
    """The webhook filter's options: every webhook by name, told apart by its id and endpoint host."""
    return [SelectChoice("", "All webhooks")] + [
        SelectChoice(str(w.id), f"{w.name[:60]} · #{w.id} · {url_host(w.url)}") for w in list_webhooks()]


def render_details(message, columns: int, notice: str | None = None):
    """A message's details row: payload, attempts, where it came from and Send again."""
    webhook = db.session.get(Webhook, message.webhook_id) if message.webhook_id is not None else None
    now = utcnow()
    return render_block(PAGE, "details", message=message, payload=activity.payload_as_sent(message),
                        labels=MessageStatus.LABELS, error_labels=activity.ERROR_LABELS,
                        columns=min(max(columns, 1), 8), now=now, sent_again=sent_again_as(message.id),
                        message_ladder=activity.ladder(message, current_app.config["WEBHOOKS_RETRY_DELAYS"], now),
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


@bp.app_template_filter("url_host")
def url_host(url: str) -> str:
    """An endpoint URL's host, to tell webhooks of the same name apart."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


@bp.app_template_global()
def attempt_headers(stored: str | None) -> list[tuple[str, str]]:
    return activity.header_pairs(stored)


@bp.app_template_filter("pretty_json")
def pretty_json(value) -> str:
    """Indented JSON as text (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@bp.get("/activity/poll")
def poll():
    """Live updates for an open log page: 204 when nothing changed, else the rows, summary and alert to redraw."""
    form = _read_query(PollForm)
    if form.errors:
        abort(400, "The log address is not understood.")
    all_activity = bool(form.all.data)
    pending = form.pending_ids()
    try:
        since = datetime.fromisoformat(form.since.data) if form.since.data else utcnow()
    except ValueError:
        abort(400, "The log address is not understood (since).")
    now = utcnow()
    log_filter = LogFilter(webhook_id=form.webhook.data, status=form.status.data or None,
                           event_type=form.type.data or None, search=form.search())
    changes = activity.log_changes(log_filter, form.newest.data or 0, pending, since, include_new=bool(form.live.data))
    summary_webhook = None if all_activity else form.webhook.data
    summary = activity.summary_fingerprint(summary_webhook, now)
    alerts = queue_alerts()
    blocks = []
    if changes.changed or changes.new:
        blocks.append("poll_rows")
    if summary != form.summary.data:
        blocks.append("summary")
    alerts_changed = alerts.state != form.redis.data
    if not blocks and not alerts_changed:
        return "", 204
    still_pending = {m.id for m in changes.changed if m.status in MessageStatus.PENDING}
    untouched = [i for i in pending if i not in {m.id for m in changes.changed}]
    new_pending = [m.id for m in changes.new if m.status in MessageStatus.PENDING]
    state = {
        "newest": max([form.newest.data or 0, *(m.id for m in changes.new)]),
        "pending": ",".join(str(i) for i in sorted({*untouched, *still_pending, *new_pending})),
        "since": (now - CLOCK_MARGIN).isoformat() if changes.changed or changes.new else form.since.data,
        "live": form.live.data or "",
        "summary": summary,
        "redis": alerts.state,
    }
    context = {"changes": changes, "poll": state, "webhook_id": summary_webhook, "show_webhook": all_activity,
               "filters": form.filters(), "was_empty": not form.newest.data, "labels": MessageStatus.LABELS,
               "webhooks_by_id": {w.id: w for w in list_webhooks()} if all_activity else {},
               **alerts.context()}
    if "summary" in blocks:
        context.update(_summary_context(summary_webhook, now))
    answer = render_blocks(PAGE, [*blocks, "poller"], oob=True, **context)
    if alerts_changed:
        answer += alerts.out_of_band()
    return answer


@bp.app_template_global()
def log_url(page_webhook, /, **params) -> str:
    """The URL of a log page (a webhook's, or All activity, whose filters may name a webhook) with its query kept."""
    params = {key: value for key, value in params.items() if value not in (None, "")}
    if page_webhook is not None:
        return url_for("activity.webhook_log", webhook_id=page_webhook.id, **params)
    return url_for("activity.all_activity", **params)


