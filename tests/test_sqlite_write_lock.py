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
