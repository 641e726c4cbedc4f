"""Engine tuning: SQLite in WAL mode whose writers take the write lock when they begin; pings of idle connections;
a dead connection's work retried once; a bounded wait for SQLite's lock where a request asks for one."""

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from flask import g, has_app_context, has_request_context, request
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

from .extensions import db

logger = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 15000
# How often a writer tries SQLite's write lock again while another holds it: soon at first, then every 2 ms.
LOCK_RETRY_FIRST_SECONDS = 0.0002
LOCK_RETRY_LONGEST_SECONDS = 0.002
BACKGROUND_LOCK_RETRY_FIRST_SECONDS = 0.002
BACKGROUND_LOCK_RETRY_LONGEST_SECONDS = 0.02
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PING_AFTER_IDLE_SECONDS = 5.0


def limit_lock_wait(seconds: float) -> None:
    """Wait at most `seconds` for SQLite's write lock in this app context (one request) instead of 15 s.

    Kept in flask.g, so the connection's next user (an admin page, the worker) waits the full 15 s again.
    PostgreSQL is not affected.
    """
    g.sqlite_busy_timeout_ms = max(0, int(seconds * 1000))


def busy_timeout_ms() -> int:
    """The SQLite busy timeout this app context asks for (limit_lock_wait), in milliseconds."""
    if has_app_context():
        return g.get("sqlite_busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS)
    return SQLITE_BUSY_TIMEOUT_MS


def _begin_statement() -> str:
    # A deferred read transaction that later writes fails at once with "database is locked"
    # when another writer holds the lock, so everything but a read-only web request begins
    # IMMEDIATE and waits its turn under the busy timeout instead.
    if has_request_context() and request.method in READ_ONLY_METHODS:
        return "BEGIN"
    return "BEGIN IMMEDIATE"


def begin_immediate(sqlite_connection: sqlite3.Connection, timeout_ms: int, last_try: Callable[[], object]) -> None:
    """BEGIN IMMEDIATE, tried again every 2 ms at most until `timeout_ms` has passed; then `last_try` begins it
    once more and raises the caller's own "database is locked". Leaves the connection's busy timeout at timeout_ms.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms between its tries, so with a few writers
    taking turns the lock sat free while they slept: the intake's p99 was 121 ms with 8 writers
    (docs/benchmarks.md, "SQLite's write lock").
    """
    sqlite_connection.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + timeout_ms / 1000
        # Outside a request (the worker, the scheduler) try less eagerly, so a waiting intake gets the lock first.
        first, longest = ((LOCK_RETRY_FIRST_SECONDS, LOCK_RETRY_LONGEST_SECONDS) if has_request_context()
                          else (BACKGROUND_LOCK_RETRY_FIRST_SECONDS, BACKGROUND_LOCK_RETRY_LONGEST_SECONDS))
        pause = first
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                sqlite_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, longest)
        last_try()
    finally:
        sqlite_connection.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")


def dialect_name() -> str:
    """The current database's dialect ("sqlite" or "postgresql"), for the few statements that differ."""
    return db.engine.dialect.name


def session_in_transaction() -> bool:
    """Whether this context's session has a transaction open, without making a session when it has none."""
    return db.session.registry.has() and db.session().in_transaction()


def autocommit_single_statement() -> None:
    """Run the session's next transaction, of one statement, in autocommit on PostgreSQL.

    psycopg sends BEGIN and COMMIT as round trips of their own; a single statement is atomic anyway.
    """
    if dialect_name() == "postgresql" and not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _random_uuid() -> str:
    return str(uuid.uuid4())


def configure_sqlite(engine: Engine) -> None:
    """Install WAL, busy timeout, BEGIN IMMEDIATE and gen_random_uuid() on every SQLite connection."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, connection_record):
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        # Let SQLAlchemy's begin event emit BEGIN itself instead of pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        connection_record.info["busy_timeout_ms"] = SQLITE_BUSY_TIMEOUT_MS
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: the log's indexes stay in memory
        cursor.close()
        # PostgreSQL's built-in, so a fan-out INSERT … SELECT makes its message UUIDs alike on both databases.
        dbapi_connection.create_function("gen_random_uuid", 0, _random_uuid)

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        # The busy timeout bounds BEGIN IMMEDIATE's wait; set only when this context wants another value
        # than the connection has (an in-process call, no round trip).
        wanted = busy_timeout_ms()
        statement = _begin_statement()
        if statement == "BEGIN IMMEDIATE":
            begin_immediate(connection.connection.driver_connection, wanted,
                            lambda: connection.exec_driver_sql(statement))
            connection.info["busy_timeout_ms"] = wanted
            return
        if connection.info.get("busy_timeout_ms") != wanted:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={wanted}")
            connection.info["busy_timeout_ms"] = wanted
        connection.exec_driver_sql(statement)


def ping_idle_connections(engine: Engine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Ping a pooled connection on checkout only when it sat idle, and replace it when the ping fails.

    pool_pre_ping would cost a round trip on every checkout (two per delivery); a connection used
    moments ago is alive, while one idle across a database restart or failover is caught here.
    """

    @event.listens_for(engine, "checkin")
    def on_checkin(dbapi_connection, connection_record):
        connection_record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection, connection_record, connection_proxy):
        checked_in_at = connection_record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(f"idle database connection is gone: {error}") from error


# Errors that mean the database cannot do the work now but may soon: unreachable or restarting
# (OperationalError, InterfaceError, DisconnectionError), locked or timed out (OperationalError), or no
# pooled connection free in time (TimeoutError).
UNAVAILABLE_ERRORS = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError)


def is_disconnect(error: BaseException) -> bool:
    """True when a database error means the connection died (server restart, terminated backend)."""
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def retry_once_on_disconnect(work: Callable[[], T], what: str = "database work") -> T:
    """Run `work`; if its connection turns out dead, roll back and run it once more on a fresh connection.

    SQLAlchemy invalidates the pool on a disconnect, so the second run checks out a new connection.
    `work` must be safe to run again after a rollback (it starts its own transaction); when it commits,
    it must also be idempotent, since a connection lost at COMMIT may have committed.
    """
    try:
        return work()
    except exc.DBAPIError as error:
        if not is_disconnect(error):
            raise
        db.session.rollback()
        logger.warning("%s: the database connection was lost (%s); retrying once on a new connection",
                       what, type(error.orig).__name__)
        return work()
