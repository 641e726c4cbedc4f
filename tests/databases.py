"""The tests' databases: under pytest-xdist each worker gets PostgreSQL databases of its own."""

import os

import psycopg

from webhooks_app.config import normalize_database_url

# "gw0", "gw1", ... under pytest-xdist; empty in a plain run.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def create_database_if_missing(url: str) -> None:
    """Create a PostgreSQL database named by the URL's path, if it does not exist yet."""
    name = url.rsplit("/", 1)[1].split("?")[0]
    admin_url = url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name}"')


def for_this_worker(postgres_url: str) -> str:
    """The URL of this xdist worker's copy of a PostgreSQL database; unchanged in a plain run."""
    if not XDIST_WORKER:
        return postgres_url
    base, _, query = postgres_url.partition("?")
    return f"{base}_{XDIST_WORKER}" + (f"?{query}" if query else "")


def suite_postgres_url() -> str:
    """TEST_DATABASE_URL when the suite runs on PostgreSQL, else TEST_POSTGRES_URL, else CI's `test`; per worker."""
    suite_url = os.environ.get("TEST_DATABASE_URL", "")
    if not suite_url.startswith(("postgres://", "postgresql")):
        suite_url = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    url = for_this_worker(normalize_database_url(suite_url))
    if XDIST_WORKER:
        create_database_if_missing(url)
    return url


def faults_postgres_url() -> str:
    """The fault tests' own PostgreSQL database (they terminate its backends), whatever the suite runs on."""
    return for_this_worker(os.environ.get("TEST_FAULTS_DATABASE_URL",
                                          "postgresql://postgres@127.0.0.1:5432/webhooks_test_faults"))
