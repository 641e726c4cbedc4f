"""Sessions live on the server: sign-in starts one, sign-out, a password change and a user's removal end it."""

import statistics
import threading
import time
from datetime import timedelta

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_token_from, make_user, sign_in
from sqlalchemy import func, select, update

from webhooks_app.extensions import db
from webhooks_app.models import LoginAttempt, UserSession, utcnow
from webhooks_app.services.users import authenticate

WEBHOOKS = "/system/integrations/api/webhooks"


def session_cookie(client) -> str:
    return client.get_cookie("session").value


def replay(client, cookie: str):
    """Put a saved session cookie back, as someone who copied it would."""
    client.set_cookie("session", cookie)
    return client.get(WEBHOOKS)


def test_a_cookie_saved_before_sign_out_no_longer_opens_admin_pages(app, admin_client):
    """After sign-out, replaying the session cookie the administrator had is sent to sign-in."""
    saved = session_cookie(admin_client)
    assert replay(admin_client, saved).status_code == 200
    admin_client.post("/logout", data={"csrf_token": admin_client.csrf_token})
    response = replay(admin_client, saved)
    assert response.status_code == 302 and response.location.startswith("/login")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UserSession)) == 0


def test_sign_in_and_sign_out_each_issue_a_new_csrf_token(app, client):
    """The CSRF token before sign-in, after sign-in and after sign-out are three different tokens."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    before = csrf_token_from(client, "/login")
    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": before})
    assert response.status_code == 302
    signed_in = csrf_token_from(client, WEBHOOKS)
    client.post("/logout", data={"csrf_token": signed_in})
    after = csrf_token_from(client, "/login")
    assert len({before, signed_in, after}) == 3
    # The old token is refused: it belonged to the session that ended.
    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": signed_in})
    assert response.status_code == 400


def test_sign_in_starts_a_new_session_each_time(app, client):
    """Two sign-ins (two browsers) are two server-side sessions; ending one leaves the other."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    other = app.test_client()
    for browser in (client, other):
        assert sign_in(browser, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UserSession)) == 2
    client.post("/logout", data={"csrf_token": csrf_token_from(client, WEBHOOKS)})
    assert client.get(WEBHOOKS).status_code == 302
    assert other.get(WEBHOOKS).status_code == 200


def test_set_password_ends_every_session_of_that_user(app, client):
    """`flask set-password EMAIL` signs the user out everywhere; the new password works, the old one does not."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    make_user(app, "other@example.com", "other password", is_admin=True)
    other = app.test_client()
    assert sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 302
    assert sign_in(other, "other@example.com", "other password").status_code == 302
    result = app.test_cli_runner().invoke(args=["set-password", ADMIN_EMAIL, "--password", "a new long password"])
    assert result.exit_code == 0, result.output
    assert client.get(WEBHOOKS).status_code == 302
    assert other.get(WEBHOOKS).status_code == 200
    assert sign_in(app.test_client(), ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 401
    assert sign_in(app.test_client(), ADMIN_EMAIL, "a new long password").status_code == 302


def test_remove_user_ends_their_sessions(app, client):
    """`flask remove-user EMAIL` deletes the user and their sessions: their browser is signed out at once."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    make_user(app, "leaver@example.com", "leaver password", is_admin=True)
    assert sign_in(client, "leaver@example.com", "leaver password").status_code == 302
    assert client.get(WEBHOOKS).status_code == 200
    result = app.test_cli_runner().invoke(args=["remove-user", "leaver@example.com"])
    assert result.exit_code == 0, result.output
    assert client.get(WEBHOOKS).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UserSession)) == 0
    assert sign_in(app.test_client(), "leaver@example.com", "leaver password").status_code == 401


def test_a_wrong_password_costs_the_same_for_known_and_unknown_emails(app):
    """A wrong password for an unknown email takes as long as for a known one (median of 5 each): the timing
    does not tell who has an account."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    timings = {"known": [], "unknown": []}
    with app.app_context():
        authenticate("warm-up@example.com", "guess", None, 1000, 900)
        for trial in range(5):
            for kind, email in (("known", ADMIN_EMAIL), ("unknown", f"nobody{trial}@example.com")):
                started = time.perf_counter()
                assert authenticate(email, "wrong password", None, 1000, 900) is None
                timings[kind].append(time.perf_counter() - started)
                db.session.rollback()
    ratio = statistics.median(timings["unknown"]) / statistics.median(timings["known"])
    assert 0.5 < ratio < 2, timings


def test_forty_parallel_wrong_passwords_get_exactly_the_allowed_failures(app):
    """Forty sign-ins with a wrong password for one email, released at once, get exactly LOGIN_MAX_FAILURES
    answers of 401 and 429 for the rest (the count and the new attempt are one atomic step)."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    clients = [app.test_client() for _ in range(40)]
    tokens = [csrf_token_from(browser, "/login") for browser in clients]
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def attempt(browser, token) -> None:
        start.wait(timeout=30)
        response = browser.post("/login", data={"email": ADMIN_EMAIL, "password": "guess", "csrf_token": token})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt, args=pair) for pair in zip(clients, tokens, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    limit = app.config["LOGIN_MAX_FAILURES"]
    assert sorted(statuses) == [401] * limit + [429] * (len(clients) - limit)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == limit


def test_a_session_unused_for_the_idle_timeout_ends(app, admin_client):
    """A session last seen longer ago than SESSION_IDLE_TIMEOUT_HOURS is refused; a used one is noted as seen."""
    with app.app_context():
        db.session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
    assert admin_client.get(WEBHOOKS).status_code == 200
    with app.app_context():
        assert utcnow() - db.session.scalar(select(UserSession.last_seen_at)) < timedelta(minutes=1)
        hours = app.config["SESSION_IDLE_TIMEOUT_HOURS"]
        db.session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(hours=hours, minutes=1)))
        db.session.commit()
    response = admin_client.get(WEBHOOKS)
    assert response.status_code == 302 and response.location.startswith("/login")


def test_a_password_change_can_keep_the_session_that_made_it(app, client):
    """set_password(…, keep_session_token=) ends the user's other sessions and keeps the one given."""
    from webhooks_app.services.users import set_password

    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    other = app.test_client()
    for browser in (client, other):
        assert sign_in(browser, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 302
    with client.session_transaction() as kept:
        token = kept["session_token"]
    with app.app_context():
        set_password(ADMIN_EMAIL, "a new long password", keep_session_token=token)
        db.session.commit()
    assert client.get(WEBHOOKS).status_code == 200
    assert other.get(WEBHOOKS).status_code == 302
