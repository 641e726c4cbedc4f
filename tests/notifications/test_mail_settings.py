"""Mail settings are checked when the configuration loads, with messages naming the problem; the Webhooks page
says when email is not configured."""

import pytest
from markup import parse, select_all, select_one, text_of

from webhooks_app.config import MailServer, parse_mail_url, settings_from_environment

BASE = {"SECRET_KEY": "k" * 40}


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mail.example.com", MailServer("plain", "mail.example.com", 25)),
    ("smtp+starttls://user%40corp:p%3Ass@mail.example.com", MailServer("starttls", "mail.example.com", 587, "user@corp",
                                                                       "p:ss")),
    ("smtps://mailer:secret@10.0.0.5:2465", MailServer("tls", "10.0.0.5", 2465, "mailer", "secret")),
])
def test_mail_urls_are_read_into_their_parts(url, expected):
    """The three schemes with their default ports, an explicit port, and percent-encoded credentials."""
    assert parse_mail_url(url) == expected


@pytest.mark.parametrize(("environment", "message"), [
    ({"MAIL_URL": "http://mail.example.com", "MAIL_FROM": "a@example.com"}, "the scheme 'http' is not one of them"),
    ({"MAIL_URL": "smtp://", "MAIL_FROM": "a@example.com"}, "it names no host"),
    ({"MAIL_URL": "smtp://mail.example.com:99999", "MAIL_FROM": "a@example.com"}, "MAIL_URL must look like"),
    ({"MAIL_URL": "smtp://u:pw@mail.example.com", "MAIL_FROM": "a@example.com"}, "a password is only sent over TLS"),
    ({"MAIL_URL": "smtp://mail.example.com"}, "MAIL_FROM is required with MAIL_URL"),
    ({"MAIL_FROM": "not an address"}, "MAIL_FROM: 'not an address' is not an email address"),
    ({"WEBHOOKS_NOTIFY_EMAILS": "ops@example.com, oncall"}, "WEBHOOKS_NOTIFY_EMAILS: 'oncall' is not an email"),
    ({"WEBHOOKS_PUBLIC_URL": "webhooks.example.com"}, "WEBHOOKS_PUBLIC_URL must be an http(s) base URL"),
])
def test_bad_mail_settings_stop_start_up_with_a_clear_message(environment, message):
    """Each mistake is refused when the configuration loads, naming the variable; no password is echoed."""
    with pytest.raises(ValueError) as refused:
        settings_from_environment({**BASE, **environment})
    assert message in str(refused.value)
    assert ":pw@" not in str(refused.value)


def test_notify_emails_and_public_url_are_read():
    """Comma-separated recipients (blanks ignored) and a base URL without its trailing slash."""
    settings = settings_from_environment({**BASE, "WEBHOOKS_NOTIFY_EMAILS": " ops@example.com,,oncall@example.org ",
                                          "WEBHOOKS_PUBLIC_URL": "https://hooks.example.com/app/"})
    assert settings["WEBHOOKS_NOTIFY_EMAILS"] == ("ops@example.com", "oncall@example.org")
    assert settings["WEBHOOKS_PUBLIC_URL"] == "https://hooks.example.com/app"
    assert settings["MAIL_URL"] is None


def test_the_webhooks_page_says_when_email_is_not_configured(app, admin_client):
    """Without MAIL_URL the page shows a notice naming MAIL_URL; with it, no notice."""
    page = parse(admin_client.get("/system/integrations/api/webhooks"))
    assert "Email is not configured." in text_of(select_one(page, "#mail-notice"))
    app.config.update(MAIL_URL="smtp://mail.example.com", MAIL_FROM="webhooks@example.com")
    try:
        page = parse(admin_client.get("/system/integrations/api/webhooks"))
        assert select_all(page, "#mail-notice") == []
    finally:
        app.config.update(MAIL_URL=None, MAIL_FROM=None)
