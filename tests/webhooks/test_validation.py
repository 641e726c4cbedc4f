"""The webhook form refuses bad input with a message beside the field and saves nothing."""

import pytest
from markup import parse, select_all, select_one, text_of, texts
from sqlalchemy import func, select

from webhooks_app.extensions import db
from webhooks_app.models import Webhook, WebhookSubscription

NEW = "/system/integrations/api/webhooks/new"
GOOD = {"name": "Asset sync", "url": "https://hooks.example.com/netx", "events": ["asset.create"], "enabled": "y"}

BAD_INPUTS = [
    ("plain http", {"url": "http://hooks.example.com/netx"}, "HTTPS is required"),
    ("no scheme", {"url": "hooks.example.com/netx"}, "HTTPS is required"),
    ("no host", {"url": "https:///netx"}, "no host name"),
    ("scheme only", {"url": "https://"}, "no host name"),
    ("space in path", {"url": "https://hooks.example.com/my hook"}, "a space at position 29"),
    ("non-ascii", {"url": "https://hooks.example.com/café"}, "must be percent-encoded"),
    ("angle bracket", {"url": "https://hooks.example.com/<x>"}, "must be percent-encoded"),
    ("broken escape", {"url": "https://hooks.example.com/100%"}, "two hexadecimal digits"),
    ("bad port", {"url": "https://hooks.example.com:99999/"}, "cannot be read"),
    ("port 0", {"url": "https://hooks.example.com:0/"}, "port is 0"),
    ("3000-character URL", {"url": "https://hooks.example.com/" + "a" * 2974}, "3,000 characters long"),
    ("empty URL", {"url": ""}, "Enter the endpoint URL."),
    ("label over 63", {"url": "https://" + "a" * 64 + ".example/"}, "is 64 characters long; each part between dots"),
    ("empty label", {"url": "https://a..example/"}, "has an empty part between dots"),
    ("leading dot", {"url": "https://.example/"}, "has an empty part between dots"),
    ("name over 253", {"url": "https://" + ".".join(["a" * 60] * 5) + "/"}, "the limit is 253"),
    ("underscore in host", {"url": "https://hooks_1.example.com/"}, "host names use letters, digits and hyphens"),
    ("percent in host", {"url": "https://b%C3%BCcher.example/"}, "host names use letters, digits and hyphens"),
    ("hyphen at label end", {"url": "https://hooks-.example.com/"}, "starts or ends with a hyphen"),
    ("bad punycode", {"url": "https://xn--a.example/"}, "is not a valid internationalized name"),
    ("credentials", {"url": "https://alice:pw@hooks.example.com/"}, "may not carry credentials"),
    ("user only", {"url": "https://alice@hooks.example.com/"}, "may not carry credentials"),
    ("empty name", {"name": "   "}, "Enter a name for the webhook."),
    ("long name", {"name": "n" * 256}, "at most 255 characters"),
    ("no events", {"events": []}, "Select at least one event."),
    ("unknown event", {"events": ["asset.explode"]}, "not a valid choice"),
]


def count_rows(app):
    with app.app_context():
        webhooks = db.session.scalar(select(func.count()).select_from(Webhook))
        subscriptions = db.session.scalar(select(func.count()).select_from(WebhookSubscription))
        return webhooks, subscriptions


@pytest.mark.parametrize(("case", "change", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_with_a_message_and_nothing_saved(app, admin_client, case, change, message):
    """Each bad input answers 422 with its message in the form, and no row is written."""
    data = {**GOOD, **change, "csrf_token": admin_client.csrf_token}
    response = admin_client.post(NEW, data=data, headers={"HX-Request": "true"})
    body = parse(response)
    assert response.status_code == 422
    assert any(message in error for error in texts(body, "ul.errors li"))
    assert select_all(body, '[aria-invalid="true"]')
    assert count_rows(app) == (0, 0)


def test_the_form_keeps_what_was_typed_after_an_error(admin_client):
    """A refused form shows the administrator's input again so nothing has to be retyped."""
    data = {**GOOD, "url": "http://hooks.example.com/netx", "csrf_token": admin_client.csrf_token}
    body = parse(admin_client.post(NEW, data=data))
    assert select_one(body, "input#name")["value"] == "Asset sync"
    assert select_one(body, "input#url")["value"] == "http://hooks.example.com/netx"
    assert [box["value"] for box in select_all(body, "input[name=events][checked]")] == ["asset.create"]


def test_missing_csrf_token_is_refused(app, admin_client):
    """A form post without the CSRF token is refused and saves nothing."""
    response = admin_client.post(NEW, data=GOOD)
    assert response.status_code == 400
    assert "CSRF" in text_of(response)
    assert count_rows(app) == (0, 0)


def test_htmx_request_with_csrf_header_is_accepted_and_without_it_refused(app, admin_client):
    """HTMX requests carry the token in X-CSRFToken; without it they are refused."""
    refused = admin_client.post(NEW, data=GOOD, headers={"HX-Request": "true"})
    assert refused.status_code == 400
    accepted = admin_client.post(
        NEW, data=GOOD, headers={"HX-Request": "true", "X-CSRFToken": admin_client.csrf_token}
    )
    assert accepted.status_code == 201
    assert count_rows(app) == (1, 1)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/netx",
        "HTTPS://hooks.example.com:8443/a%20b?x=1&y=%E2%9C%93#frag",
        "https://[2001:db8::1]/hook",
        "https://xn--bcher-kva.example/",
        "https://example.com./",
        "https://" + "a" * 63 + ".example/",
        "https://127.0.0.1:8443/x",
        "https://hooks.example.com/" + "a" * (2048 - 26),
    ],
)
def test_good_urls_are_accepted(app, admin_client, url):
    """HTTPS URLs with a host, legal characters and at most 2,048 characters are saved as typed."""
    response = admin_client.post(NEW, data={**GOOD, "url": url, "csrf_token": admin_client.csrf_token})
    assert response.status_code == 201, response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Webhook.url)) == url


def test_name_with_markup_is_stored_as_typed_and_shown_escaped(app, admin_client):
    """A name containing a script tag is saved verbatim and rendered as text, never as markup."""
    name = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    admin_client.post(NEW, data={**GOOD, "name": name, "csrf_token": admin_client.csrf_token})
    page = parse(admin_client.get("/system/integrations/api/webhooks"))
    assert all(script.has_attr("src") for script in select_all(page, "script"))
    assert select_all(page, "img") == []
    assert text_of(select_one(page, "td.name a")) == name
    with app.app_context():
        assert db.session.scalar(select(Webhook.name)) == name

