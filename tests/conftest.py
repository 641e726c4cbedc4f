"""Fixtures built from the app factory: a migrated real database, a real Redis, signed-in clients."""

import os
import re
import socket
import tempfile
import threading
from pathlib import Path

import pytest
import redis
from sqlalchemy import text
from werkzeug.serving import make_server

# setdefault keeps one folder even when conftest is also imported as a plain module.
_INSTANCE = os.environ.setdefault("WEBHOOKS_INSTANCE_PATH", tempfile.mkdtemp(prefix="webhooks-tests-"))
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from webhooks_app import create_app  # noqa: E402
from webhooks_app.extensions import db  # noqa: E402
from webhooks_app.services.users import create_user  # noqa: E402

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"
CSRF_IN_BODY = re.compile(r'"X-CSRFToken": "([^"]+)"')


def database_url() -> str:
    """TEST_DATABASE_URL when given (PostgreSQL in CI), else a SQLite file of this run."""
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{Path(_INSTANCE) / 'test.sqlite3'}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis the tests run against; the suite fails when it does not answer."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis at {url} does not answer ({error}); the tests need a real Redis")
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def app(redis_url):
    """One app for the session on a freshly migrated database."""
    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url(),
            "REDIS_URL": redis_url,
            "LOGIN_MAX_FAILURES": 5,
        }
    )
    from flask_migrate import upgrade

    with application.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        else:
            db.engine.dispose()
            Path(database_url().removeprefix("sqlite:///")).unlink(missing_ok=True)
        upgrade()
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def clean_tables(request):
    """Empty every table after each test that used the database."""
    yield
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    with application.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture
def app_context(app):
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token_from(client, path: str = "/login") -> str:
    """Read the CSRF token a page hands to its forms and HTMX requests."""
    response = client.get(path)
    match = CSRF_IN_BODY.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


def make_user(app, email: str, password: str, is_admin: bool) -> None:
    with app.app_context():
        create_user(email, password, is_admin=is_admin)
        db.session.commit()


def sign_in(client, email: str, password: str):
    token = csrf_token_from(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


@pytest.fixture
def admin_client(app, client):
    """A test client signed in as an administrator through the real sign-in form."""
    make_user(app, ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
    response = sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert response.status_code == 302, response.get_data(as_text=True)
    client.csrf_token = csrf_token_from(client, "/system/integrations/api/webhooks")
    return client


@pytest.fixture
def live_server(app):
    """The app served over HTTP on a free 127.0.0.1 port in a background thread."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    thread.join(timeout=10)
