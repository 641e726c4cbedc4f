"""SQLite's write lock: a writer waits its turn by trying BEGIN IMMEDIATE again, and gives up at its busy timeout."""

import sqlite3
import threading

import pytest
from servers import wait_for

from webhooks_app.database import begin_immediate


@pytest.fixture
def database_file(tmp_path):
    path = tmp_path / "lock.sqlite3"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (v INTEGER)")
    setup.close()
    return path


def connect(path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def refuse(message: str):
    def last_try():
        raise sqlite3.OperationalError(message)
    return last_try


def test_a_writer_gets_the_lock_once_its_holder_commits(database_file):
    """A writer that found the lock taken keeps trying and begins as soon as the holder has committed."""
    holder, waiter = connect(database_file), connect(database_file)
    holder.execute("BEGIN IMMEDIATE")
    began = threading.Event()

    def wait_then_write():
        begin_immediate(waiter, 10_000, refuse("the wait was given up"))
        began.set()

    thread = threading.Thread(target=wait_then_write)
    thread.start()
    holder.execute("INSERT INTO t VALUES (1)")
    holder.execute("COMMIT")
    wait_for(began.is_set, timeout=10)
    thread.join(timeout=10)
    waiter.execute("INSERT INTO t VALUES (2)")
    waiter.execute("COMMIT")
    assert [row[0] for row in waiter.execute("SELECT v FROM t ORDER BY v")] == [1, 2]


def test_a_writer_gives_up_at_its_timeout_with_the_callers_error(database_file):
    """While the lock stays taken, the caller's last try raises its own "database is locked" after the timeout,
    and the connection's busy timeout is left at the asked value."""
    holder, waiter = connect(database_file), connect(database_file)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            begin_immediate(waiter, 50, lambda: waiter.execute("BEGIN IMMEDIATE"))
    finally:
        holder.execute("ROLLBACK")
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 50
    assert not waiter.in_transaction


def test_a_free_lock_is_taken_at_once_and_the_busy_timeout_kept(database_file):
    """With no other writer the first try begins the transaction; the busy timeout is the asked one afterwards."""
    writer = connect(database_file)
    begin_immediate(writer, 1500, refuse("not expected"))
    assert writer.in_transaction
    assert writer.execute("PRAGMA busy_timeout").fetchone()[0] == 1500
    writer.execute("ROLLBACK")


def test_an_error_other_than_busy_is_raised_at_once(database_file):
    """Only "the lock is taken" is waited out: another error (a transaction already open) is raised on the spot."""
    nested = connect(database_file)
    nested.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        begin_immediate(nested, 10_000, refuse("the wait was not expected"))


def tries_while_held(database_file, milliseconds: int) -> int:
    """How many times a writer tries BEGIN IMMEDIATE while another holds the lock for its whole wait."""
    holder, waiter = connect(database_file), connect(database_file)
    tries = []
    waiter.set_trace_callback(lambda statement: tries.append(1) if statement == "BEGIN IMMEDIATE" else None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="given up"):
            begin_immediate(waiter, milliseconds, refuse("the wait was given up"))
    finally:
        holder.execute("ROLLBACK")
    return len(tries)


def test_the_worker_waits_for_the_lock_less_eagerly_than_a_request(app, database_file):
    """Outside a request (the worker, the scheduler) a writer tries again every 2 ms at first, up to every 20 ms,
    instead of every 0.2 ms up to 2 ms: when both wait, the intake's request gets SQLite's write lock first."""
    with app.test_request_context("/api/v1/events", method="POST"):
        in_request = tries_while_held(database_file, 300)
    in_background = tries_while_held(database_file, 300)
    assert in_background <= 25 and in_request >= 3 * in_background, (in_request, in_background)
