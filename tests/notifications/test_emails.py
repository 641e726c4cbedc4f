"""Warning and Disabled emails end to end: the real worker and scheduler, Redis, an HTTPS receiver and a real
SMTP server (aiosmtpd), including one that refuses, one that is down, STARTTLS and SMTPS with AUTH."""

import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, DeliveryProcesses, delivery_environment, mail_environment, make_user
from servers import wait_for
from smtp_servers import SmtpServer
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Message, MessageStatus, Webhook
from webhooks_app.services.intake import emit_event
from webhooks_app.services.webhooks import WebhookFields, create_webhook, update_webhook

SLOW_LAST_RUNGS = "1,1,60,60,60"  # the warning comes after ~2 s; disabling would take minutes
FAST_LADDER = "1,1,2,2,2"  # disabled ~7 s after the warning: time enough to send it first


def start(fresh_redis, certificates, smtp_url: str, ladder: str, **overrides) -> DeliveryProcesses:
    settings = {**mail_environment(smtp_url, certificates), "WEBHOOKS_RETRY_DELAYS": ladder, **overrides}
    return DeliveryProcesses(delivery_environment(fresh_redis.url, certificates, **settings))


def add_webhook(app, url: str, name: str = "Orders") -> tuple[int, str]:
    with app.app_context():
        webhook, secret = create_webhook(WebhookFields(name, url, ("asset.create",), True))
        db.session.commit()
        return webhook.id, secret


def emit(app, count: int = 1, first_asset: int = 1) -> None:
    with app.app_context():
        for asset_id in range(first_asset, first_asset + count):
            emit_event({"type": "asset.create", "assetId": asset_id, "userId": 1})


def webhook_row(app, webhook_id: int) -> Webhook:
    with app.app_context():
        webhook = db.session.get(Webhook, webhook_id)
        db.session.expunge_all()
        return webhook


def messages(app) -> list[Message]:
    with app.app_context():
        rows = list(db.session.scalars(select(Message).order_by(Message.id)))
        db.session.expunge_all()
        return rows


def kinds(mails) -> list[str]:
    return ["warning" if "is failing" in mail.subject else "disabled" for mail in mails]


def test_one_warning_then_one_disabled_email_with_what_an_admin_needs(app, fresh_redis, certificates, receiver,
                                                                     smtp_server, processes_holder):
    """Three messages fail together: exactly one warning (name, host only, likely cause, last error, when it will
    be disabled, log link) goes to every administrator and WEBHOOKS_NOTIFY_EMAILS; then one Disabled email with the
    cause and what to do. Neither carries the secret or the URL's path."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    make_user(app, "viewer@example.com", ADMIN_PASSWORD, is_admin=False)
    webhook_id, secret = add_webhook(app, receiver.url("/status/500/private-path-token"), name="Orders <prod>")
    processes_holder.append(start(fresh_redis, certificates, smtp_server.url, FAST_LADDER))
    emit(app, 3)
    wait_for(lambda: kinds(smtp_server.received).count("disabled") == 1, timeout=60,
             message="the Disabled email")
    mails = smtp_server.received
    assert sorted(kinds(mails)) == ["disabled", "warning"], [mail.subject for mail in mails]
    warning, disabled = sorted(mails, key=lambda mail: kinds([mail])[0], reverse=True)
    for mail in (warning, disabled):
        assert sorted(mail.recipients) == [ADMIN_EMAIL, "ops@example.com"]
        assert mail.mail_from == "webhooks@example.com"
        raw = mail.message.as_string()
        assert secret not in raw and "private-path-token" not in raw and "/status/500" not in raw
        assert f"127.0.0.1:{receiver.port}" in mail.body and "Orders <prod>" in mail.body
        assert f"https://webhooks.example.com/base/system/integrations/api/webhooks/{webhook_id}/log" in mail.body
    assert "Orders <prod>" in warning.subject
    assert "Likely cause: the endpoint answered with an error instead of a 2xx status." in warning.body
    assert "Last error: HTTP 500." in warning.body
    assert "will be disabled at about" in warning.body and " UTC" in warning.body
    assert "All 6 delivery attempts of a message failed" in disabled.body
    for step in ("Fix the endpoint", "Test", "Status toggle", "Replay missed events"):
        assert step in disabled.body
    assert "Webhooks page: https://webhooks.example.com/base/system/integrations/api/webhooks" in \
        disabled.body.splitlines()
    assert webhook_row(app, webhook_id).enabled is False


def test_a_success_ends_the_streak_and_the_next_streak_is_warned_again(app, fresh_redis, certificates, receiver,
                                                                      smtp_server, processes_holder):
    """Failing → one warning; a successful delivery ends the streak (the row's streak is cleared); failing again
    is a new streak with a warning of its own."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    webhook_id, _ = add_webhook(app, receiver.url("/status/500"))
    processes_holder.append(start(fresh_redis, certificates, smtp_server.url, SLOW_LAST_RUNGS))

    def point_at(path: str) -> None:
        with app.app_context():
            update_webhook(webhook_id, WebhookFields("Orders", receiver.url(path), ("asset.create",), True))
            db.session.commit()

    emit(app, 1, first_asset=1)
    smtp_server.wait_for_mail(1)
    assert webhook_row(app, webhook_id).warned_at is not None
    point_at("/ok")
    emit(app, 1, first_asset=2)
    wait_for(lambda: webhook_row(app, webhook_id).failure_streak_started_at is None, message="the streak to end")
    assert webhook_row(app, webhook_id).warned_at is None
    point_at("/status/502")
    emit(app, 1, first_asset=3)
    mails = smtp_server.wait_for_mail(2)
    assert kinds(mails) == ["warning", "warning"] and "HTTP 502" in mails[1].body


@pytest.mark.parametrize(("refuse", "refusals_per_email"), [("rcpt", 2), ("data", 1)])
def test_a_refusing_mail_server_is_logged_and_never_holds_up_deliveries(app, fresh_redis, certificates, receiver,
                                                                        processes_holder, refuse, refusals_per_email):
    """A mail server that answers 550 (to the recipients, or to the message) is not asked again and delays
    nothing: the messages go through their whole ladder and the webhook is disabled on time."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    server = SmtpServer(refuse=refuse).start()
    try:
        webhook_id, _ = add_webhook(app, receiver.url("/status/500"))
        processes = start(fresh_redis, certificates, server.url, FAST_LADDER)
        processes_holder.append(processes)
        emit(app, 1)
        wait_for(lambda: [m.status for m in messages(app)] == [MessageStatus.FAILED], timeout=60,
                 message="the message to use up its ladder")
        assert webhook_row(app, webhook_id).enabled is False
        wait_for(lambda: processes.worker.output().count("refused the") == 2, timeout=30,
                 message="both notifications to be refused and logged")
        assert "refused the disabled notification of webhook" in processes.worker.output()
        assert server.handler.refused == 2 * refusals_per_email  # each email tried once: 5xx is final
        assert server.received == []
    finally:
        server.stop()


def test_a_mail_server_that_is_down_delays_the_email_never_a_delivery(app, fresh_redis, certificates, receiver,
                                                                      processes_holder):
    """With the mail server down the warning is tried again and again (the actor's own retries) while deliveries
    go on; once the server is up, the warning arrives."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    server = SmtpServer()  # its port is reserved for it, nothing listens there yet
    try:
        add_webhook(app, receiver.url("/status/500"), name="Failing")
        healthy_id, _ = add_webhook(app, receiver.url("/ok"), name="Healthy")
        processes = start(fresh_redis, certificates, server.url, SLOW_LAST_RUNGS)
        processes_holder.append(processes)
        emit(app, 1, first_asset=1)
        wait_for(lambda: processes.worker.output().count("could not be emailed yet") >= 2, timeout=30,
                 message="two failed tries to email the warning")
        emit(app, 1, first_asset=2)
        wait_for(lambda: any(m.webhook_id == healthy_id and m.status == MessageStatus.SENT for m in messages(app)),
                 message="the healthy webhook's delivery")
        assert server.received == []
        server.start()
        (mail,) = server.wait_for_mail(1, timeout=60)
        assert "“Failing” is failing" in mail.subject
    finally:
        server.stop()


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_starttls_and_smtps_with_auth(app, fresh_redis, certificates, receiver, processes_holder, security):
    """smtp+starttls:// and smtps:// with user:password@: the worker verifies the server's certificate (MAIL_CA_BUNDLE),
    logs in, and the warning arrives."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    server = SmtpServer(security, certificates.server_context, credentials=("mailer", "p@ss word")).start()
    try:
        add_webhook(app, receiver.url("/status/500"))
        url = server.url.replace("p@ss word", "p%40ss%20word")
        processes_holder.append(start(fresh_redis, certificates, url, SLOW_LAST_RUNGS))
        emit(app, 1)
        (mail,) = server.wait_for_mail(1)
        assert mail.authenticated and "is failing" in mail.subject
    finally:
        server.stop()


def test_without_mail_url_notifications_are_only_logged(app, fresh_redis, certificates, receiver,
                                                       processes_holder):
    """Without MAIL_URL the warning is written to the worker's log (subject and text), and nothing is sent."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    add_webhook(app, receiver.url("/status/500"))
    settings = {"WEBHOOKS_RETRY_DELAYS": SLOW_LAST_RUNGS, "MAIL_URL": "", "MAIL_FROM": ""}
    processes = DeliveryProcesses(delivery_environment(fresh_redis.url, certificates, **settings))
    processes_holder.append(processes)
    emit(app, 1)
    wait_for(lambda: "Email is not configured (MAIL_URL)" in processes.worker.output(), timeout=30,
             message="the logged warning")
    assert "Last error: HTTP 500." in processes.worker.output()
