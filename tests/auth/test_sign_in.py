"""Sign-in, the administrator-only rule and the sign-in rate limit."""

import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_token_from, make_user, sign_in
from markup import select_one, text_of
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import User

WEBHOOK_PAGES = [
    "/system/integrations/api/webhooks",
    "/system/integrations/api/webhooks/new",
    "/system/integrations/api/webhooks/1/edit",
    "/system/integrations/api/webhooks/1/delete",
    "/system/integrations/api/webhooks/1/reset-secret",
    "/system/integrations/api/webhooks/redis-status",
]


@pytest.mark.parametrize("path", WEBHOOK_PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client, path):
    """Every webhook page redirects an anonymous visitor to the sign-in page."""
    response = client.get(path)
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")


def test_anonymous_htmx_request_gets_a_full_page_redirect(client):
    """An HTMX request without a session navigates the whole page to sign-in instead of swapping it in."""
    response = client.get(WEBHOOK_PAGES[0], headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


def test_sign_in_page_has_labelled_fields(client):
    """The sign-in form's fields are labelled Email and Password."""
    page = client.get("/login")
    for name, label, kind in (("email", "Email", "email"), ("password", "Password", "password")):
        assert text_of(select_one(page, f"label[for={name}]")) == label
        assert select_one(page, f"input#{name}")["type"] == kind


def test_administrator_signs_in_and_reaches_webhooks(app, client):
    """The right password signs an administrator in and lands on the Webhooks page."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    response = sign_in(client, ADMIN_EMAIL.upper(), ADMIN_PASSWORD)
    assert response.status_code == 302
    assert response.location == "/system/integrations/api/webhooks"
    assert client.get(response.location).status_code == 200


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(app, client):
    """After sign-in the visitor returns to ?next= when it is a local path, never to another site."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    token = csrf_token_from(client)
    data = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token}
    response = client.post("/login?next=//evil.example/", data=data)
    assert response.location == "/system/integrations/api/webhooks"
    client.post("/logout", data={"csrf_token": csrf_token_from(client, "/system/integrations/api/webhooks")})
    token = csrf_token_from(client)
    response = client.post(
        "/login?next=/system/integrations/api/webhooks/new", data={**data, "csrf_token": token}
    )
    assert response.location == "/system/integrations/api/webhooks/new"


def test_wrong_password_is_refused(app, client):
    """A wrong password gets a clear message and no session."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    response = sign_in(client, ADMIN_EMAIL, "wrong password")
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.get_data(as_text=True)
    assert client.get(WEBHOOK_PAGES[0]).status_code == 302


@pytest.mark.parametrize("path", WEBHOOK_PAGES)
def test_signed_in_non_administrator_gets_403(app, client, path):
    """A signed-in user without admin rights is refused every webhook page."""
    make_user(app, "viewer@example.com", "viewer password", is_admin=False)
    assert sign_in(client, "viewer@example.com", "viewer password").status_code == 302
    response = client.get(path)
    assert response.status_code == 403
    assert "administrators only" in response.get_data(as_text=True)


def test_non_administrator_cannot_change_anything(app, client):
    """A non-admin's POST to create a webhook is refused before anything is saved."""
    make_user(app, "viewer@example.com", "viewer password", is_admin=False)
    sign_in(client, "viewer@example.com", "viewer password")
    token = csrf_token_from(client, "/login")
    response = client.post(
        "/system/integrations/api/webhooks/new",
        data={"name": "x", "url": "https://example.com/", "events": ["asset.create"], "csrf_token": token},
    )
    assert response.status_code == 403
    with app.app_context():
        from webhooks_app.models import Webhook

        assert db.session.scalar(select(db.func.count()).select_from(Webhook)) == 0


def test_failed_sign_ins_are_rate_limited(app, client):
    """After five failures even the right password is refused for a while, with a message saying so."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    for _ in range(5):
        assert sign_in(client, ADMIN_EMAIL, "guess").status_code == 401
    response = sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.get_data(as_text=True)
    assert client.get(WEBHOOK_PAGES[0]).status_code == 302


def test_sign_in_without_csrf_token_is_refused(app, client):
    """A sign-in POST without the CSRF token is refused."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_session_cookie_is_httponly_and_samesite(app, client):
    """The session cookie cannot be read by scripts and is not sent on cross-site posts."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    response = sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_passwords_are_stored_hashed(app):
    """The database keeps a salted hash, never the password."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    with app.app_context():
        user = db.session.scalar(select(User))
        assert ADMIN_PASSWORD not in user.password_hash
        assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))


def test_sign_out_ends_the_session(admin_client):
    """Signing out sends the administrator back to sign-in."""
    response = admin_client.post("/logout", data={"csrf_token": admin_client.csrf_token})
    assert response.status_code == 302
    assert admin_client.get(WEBHOOK_PAGES[0]).status_code == 302


@pytest.mark.parametrize("method", ["OPTIONS", "GET", "HEAD"])
def test_anonymous_requests_of_any_method_are_sent_to_sign_in(client, method):
    """Admin pages send anonymous visitors to sign-in whatever the method (OPTIONS gave a 500)."""
    response = client.open(WEBHOOK_PAGES[2], method=method)
    assert response.status_code == 302
    assert response.location.startswith("/login")


@pytest.mark.parametrize("target", ["/%0D%0AX:%201", "/%5Cevil.example/", "%2F%2Fevil.example", "/a%09b",
                                    "https://evil.example/"])
def test_sign_in_with_a_hostile_next_lands_on_the_webhooks_page(app, client, target):
    """With good credentials and a ?next= holding CR/LF (a 500 before), a backslash or a scheme, sign-in lands
    on the Webhooks page."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    token = csrf_token_from(client)
    response = client.post(f"/login?next={target}",
                           data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    assert response.location == "/system/integrations/api/webhooks"
