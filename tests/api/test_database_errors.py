"""The events API when the database fails: dead connections retried, 503 + Retry-After when unavailable or
locked, JSON (never the HTML error page) for every error under /api/v1."""

import json
import socket
import sqlite3
import threading
import time

import pytest
from api.helpers import (
    ASSET_CREATE,
    URL,
    add_webhook,
    assert_error,
    bearer,
    new_token,
    post_event,
    sqlite_path,
    stored_counts,
    stored_events,
    terminate_backends,
)
from servers import wait_for
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from webhooks_app.database import SQLITE_BUSY_TIMEOUT_MS, limit_lock_wait
from webhooks_app.extensions import db
from webhooks_app.services.api_tokens import create_api_token, revoke_api_token


def test_a_post_after_the_databases_backends_were_terminated_is_accepted(postgres_app):
    """After PostgreSQL's backends are terminated (a restart, a failover), the next POSTs still get 202.

    Their pooled connections are all dead: the first statement of a request (the token check, or the event's
    when the token check was skipped) fails, the pool's idle connections are dropped with it, and the work is
    retried once on a new connection.
    """
    add_webhook(postgres_app, events=("asset.create",))
    token = new_token(postgres_app)
    client = postgres_app.test_client()
    for attempt in range(3):
        assert post_event(client, token, ASSET_CREATE).status_code == 202
        with postgres_app.app_context():  # several idle connections in the pool, as a busy server has
            held = [db.engine.raw_connection() for _ in range(3)]
            for connection in held:
                connection.close()
        assert terminate_backends(postgres_app) >= 3
        for _ in range(2):  # the first notes the token's use, the second does not
            response = post_event(client, token, ASSET_CREATE)
            assert response.status_code == 202, (attempt, response.get_data(as_text=True))
    assert stored_counts(postgres_app) == (9, 9)


def test_a_connection_lost_under_the_events_statement_stores_the_event_once(postgres_app, caplog):
    """A backend that dies just before the event's statement (on PostgreSQL it commits by itself, in autocommit)
    costs one retry on a new connection, not an error or a second event; the retry stores the same eventId."""
    add_webhook(postgres_app, events=("asset.create",))
    token = new_token(postgres_app)
    client = postgres_app.test_client()
    assert post_event(client, token, ASSET_CREATE).status_code == 202  # notes the token's use
    with postgres_app.app_context():
        engine = db.engine
    killer = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    checkouts = []

    def terminate_the_stores_connection(dbapi_connection, connection_record, connection_proxy):
        checkouts.append(dbapi_connection)
        if len(checkouts) == 2:  # the first is the token check's, the second the event's store
            pid = dbapi_connection.info.backend_pid
            with killer.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                wait_for(lambda: not other.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"),
                                                   {"pid": pid}).first(), message="the backend to exit")

    event.listen(engine, "checkout", terminate_the_stores_connection)
    try:
        with caplog.at_level("WARNING", logger="webhooks_app.database"):
            response = post_event(client, token, ASSET_CREATE)
    finally:
        event.remove(engine, "checkout", terminate_the_stores_connection)
        killer.dispose()
    assert response.status_code == 202, response.get_data(as_text=True)
    event_id = response.get_json()["eventId"]
    assert [record.getMessage().split(":")[0] for record in caplog.records] == ["event intake"]
    assert [row[0] for row in stored_events(postgres_app)][1:] == [event_id]
    assert stored_counts(postgres_app) == (2, 2)


def assert_unavailable(response) -> None:
    """503 {"error": {"field": "database"}} with a Retry-After of a few seconds."""
    assert_error(response, 503, "database")
    assert 1 <= int(response.headers["Retry-After"]) <= 10


def test_an_unreachable_database_answers_503_json_with_retry_after(unreachable_app):
    """With the database unreachable (nothing listens on its port) the API answers 503 JSON with Retry-After."""
    client = unreachable_app.test_client()
    started = time.monotonic()
    response = client.post(URL, json=ASSET_CREATE, headers=bearer("whk_" + "x" * 43))
    assert_unavailable(response)
    assert time.monotonic() - started < 5


def test_a_database_that_never_answers_gets_a_503_after_the_connect_timeout(silent_database_app):
    """A database host that accepts and stays silent costs one connect timeout (5 s), then 503 JSON, not a hang."""
    from webhooks_app import DATABASE_CONNECT_TIMEOUT_SECONDS

    client = silent_database_app.test_client()
    finished = threading.Event()
    answer = {}

    def post():
        answer["response"] = client.post(URL, json=ASSET_CREATE, headers=bearer("whk_" + "x" * 43))
        finished.set()

    threading.Thread(target=post, daemon=True).start()
    assert finished.wait(timeout=4 * DATABASE_CONNECT_TIMEOUT_SECONDS), "the request hung on the silent database"
    assert_unavailable(answer["response"])


def hold_write_lock(app) -> sqlite3.Connection:
    """Another connection to the app's SQLite file holding the write lock (BEGIN IMMEDIATE) until it ends."""
    holder = sqlite3.connect(sqlite_path(app), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_held_sqlite_write_lock_answers_503_within_the_intake_bound(sqlite_app, monkeypatch):
    """While another process holds SQLite's write lock, POST waits WEBHOOKS_INTAKE_LOCK_TIMEOUT_SECONDS, not 15 s,
    then answers 503 with Retry-After; once the lock is released the event is accepted."""
    monkeypatch.setitem(sqlite_app.config, "WEBHOOKS_INTAKE_LOCK_TIMEOUT_SECONDS", 1)
    add_webhook(sqlite_app, events=("asset.create",))
    token = new_token(sqlite_app)
    client = sqlite_app.test_client()
    assert post_event(client, token, ASSET_CREATE).status_code == 202
    holder = hold_write_lock(sqlite_app)
    try:
        for _ in range(2):
            started = time.monotonic()
            response = post_event(client, token, ASSET_CREATE)
            waited = time.monotonic() - started
            assert_unavailable(response)
            assert 0.9 <= waited < 3, waited
    finally:
        holder.rollback()
        holder.close()
    assert post_event(client, token, ASSET_CREATE).status_code == 202
    assert stored_counts(sqlite_app) == (2, 2)


@pytest.mark.parametrize("kind", ["unknown", "revoked"])
def test_a_bad_token_gets_401_at_once_while_the_write_lock_is_held(sqlite_app, monkeypatch, kind):
    """The token look-up only reads (in WAL mode SQLite's readers never wait): while another process holds the
    write lock, an unknown or revoked token is refused with 401 at once, not with a 503 after the lock wait."""
    monkeypatch.setitem(sqlite_app.config, "WEBHOOKS_INTAKE_LOCK_TIMEOUT_SECONDS", 2)
    with sqlite_app.app_context():
        row, token = create_api_token("revoked")
        db.session.commit()
        revoke_api_token(row.id)
        db.session.commit()
        db.session.remove()
    if kind == "unknown":
        token = "whk_" + "x" * 43
    client = sqlite_app.test_client()
    holder = hold_write_lock(sqlite_app)
    try:
        started = time.monotonic()
        response = post_event(client, token, ASSET_CREATE)
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert_error(response, 401, "Authorization")
    assert waited < 1, waited


def test_only_the_api_request_waits_less_for_the_lock(sqlite_app):
    """limit_lock_wait() shortens SQLite's busy timeout for one app context; the next context (an admin page,
    the worker) on the same pooled connection waits the full 15 s again."""
    with sqlite_app.app_context():
        db.engine.dispose()  # an empty pool: both contexts below use the same connection
        limit_lock_wait(1.5)
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar_one() == 1500
        shortened = db.session.connection().connection.dbapi_connection
        db.session.remove()
    with sqlite_app.app_context():
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar_one() == SQLITE_BUSY_TIMEOUT_MS == 15000
        assert db.session.connection().connection.dbapi_connection is shortened
        db.session.remove()


def test_a_slow_client_keeps_no_transaction_open(sqlite_app, sqlite_server):
    """While a client is still sending its body, the request holds no SQLite write lock: other writers go on.

    The lock is probed for a second after the headers arrived, which is ample for the server to check the
    token (the check that used to begin the transaction); the request is then completed and accepted.
    """
    add_webhook(sqlite_app, events=("asset.create",))
    token = new_token(sqlite_app)
    client = sqlite_app.test_client()
    assert post_event(client, token, ASSET_CREATE).status_code == 202  # the token's next check writes nothing
    body = json.dumps(ASSET_CREATE).encode()
    head = (f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    probe = sqlite3.connect(sqlite_path(sqlite_app), timeout=0, isolation_level=None)
    with socket.create_connection(sqlite_server.server_address, timeout=10) as slow_client:
        slow_client.sendall(head + body[:10])
        probed_until = time.monotonic() + 1

        def lock_free_for_a_second() -> bool:
            probe.execute("BEGIN IMMEDIATE")  # raises "database is locked" while a request holds the lock
            probe.execute("ROLLBACK")
            return time.monotonic() >= probed_until

        wait_for(lock_free_for_a_second, timeout=5, interval=0.02, message="a second of probing the write lock")
        slow_client.sendall(body[10:])
        answer = b""
        while chunk := slow_client.recv(65536):
            answer += chunk
    probe.close()
    assert answer.startswith(b"HTTP/1.1 202"), answer
    assert stored_counts(sqlite_app) == (2, 2)


def test_an_unexpected_error_answers_500_json(app, client, api_token, monkeypatch, caplog):
    """An error nobody expected still answers JSON under /api/v1 (500), never the HTML error page, and is logged."""
    import webhooks_app.api.routes as routes

    def fail(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(routes, "emit_event", fail)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    message = assert_error(post_event(client, api_token, ASSET_CREATE), 500, "server")
    assert "injected" not in message
    assert "injected failure" in caplog.text


@pytest.mark.parametrize(("method", "path", "status", "field"), [
    pytest.param("GET", "/api/v1/events", 405, "method", id="get-events"),
    pytest.param("PUT", "/api/v1/events", 405, "method", id="put-events"),
    pytest.param("GET", "/api/v1/event", 404, "path", id="unknown-path"),
    pytest.param("POST", "/api/v1/events/1", 404, "path", id="unknown-subpath"),
])
def test_a_wrong_method_or_path_under_the_api_answers_json(client, method, path, status, field):
    """404 and 405 under /api/v1 answer the API's JSON error shape, not the HTML error page."""
    response = client.open(path, method=method)
    assert_error(response, status, field)
    if status == 405:
        assert response.headers["Allow"] == "POST"


def test_pages_outside_the_api_keep_their_html_error_pages(client):
    """A 404 outside /api/v1 is still the HTML page."""
    response = client.get("/api/v1events")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
