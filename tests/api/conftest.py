"""Apps on PostgreSQL and on SQLite whichever database the suite runs on, for tests of one database's failures.

CI runs the suite once on SQLite and once on PostgreSQL: a test of what terminated PostgreSQL backends
do uses the suite's app in the PostgreSQL run and a second app on PostgreSQL in the SQLite run (and the
other way round for SQLite's write lock), so it runs in both and fails, never skips, without PostgreSQL.
"""

import threading

import pytest
from conftest import free_port
from databases import suite_postgres_url
from sqlalchemy import text
from werkzeug.serving import make_server

from webhooks_app import create_app
from webhooks_app.extensions import db, task_queue


def other_app(session_app, database_uri: str, migrated: bool = True):
    """An app like the suite's on another database (migrated from scratch), sharing the suite's Redis."""
    application = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_uri,
                              "REDIS_URL": session_app.config["REDIS_URL"]})
    task_queue.init_app(session_app)  # create_app bound the actors to the new app's broker: give them back
    if migrated:
        from flask_migrate import upgrade

        with application.app_context():
            if db.engine.dialect.name == "postgresql":
                with db.engine.begin() as connection:
                    connection.execute(text("DROP SCHEMA public CASCADE"))
                    connection.execute(text("CREATE SCHEMA public"))
            upgrade()
    return application


def empty_tables(application) -> None:
    with application.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())


def dialect_of(application) -> str:
    with application.app_context():
        return db.engine.dialect.name


@pytest.fixture(scope="session")
def postgres_session_app(app):
    """The suite's app when it runs on PostgreSQL, else one on databases.suite_postgres_url()."""
    if dialect_of(app) == "postgresql":
        yield app
        return
    application = other_app(app, suite_postgres_url())
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_session_app(app, tmp_path_factory):
    """The suite's app when it runs on SQLite, else one on a SQLite file of its own."""
    if dialect_of(app) == "sqlite":
        yield app
        return
    path = tmp_path_factory.mktemp("sqlite") / "api.sqlite3"
    application = other_app(app, f"sqlite:///{path}")
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def postgres_app(app, postgres_session_app):
    """An app on PostgreSQL with empty tables after the test."""
    yield postgres_session_app
    if postgres_session_app is not app:
        empty_tables(postgres_session_app)


@pytest.fixture
def sqlite_app(app, sqlite_session_app):
    """An app on SQLite with empty tables after the test."""
    yield sqlite_session_app
    if sqlite_session_app is not app:
        empty_tables(sqlite_session_app)


@pytest.fixture(scope="session")
def unreachable_app(app):
    """An app whose PostgreSQL URL names a port nothing listens on."""
    application = other_app(app, f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/unreachable",
                            migrated=False)
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def silent_database_app(app, silent_server):
    """An app whose PostgreSQL host accepts the connection and never answers (packets dropped on the way)."""
    application = other_app(app, f"postgresql+psycopg://postgres@127.0.0.1:{silent_server.port}/silent",
                            migrated=False)
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def sqlite_server(sqlite_app):
    """sqlite_app served over HTTP on a free 127.0.0.1 port in a background thread."""
    server = make_server("127.0.0.1", free_port(), sqlite_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(timeout=10)
