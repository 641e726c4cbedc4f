"""Core statements run straight on a pooled DBAPI connection, for the event intake's hot path.

SQLAlchemy compiles each statement once per dialect and converts its parameters and results with the columns'
own types; the driver runs it, with no Session or Connection around it. On this project's 2-core machine that
is a tenth of the per-statement CPU on SQLite and about half on PostgreSQL (docs/benchmarks.md, "Intake").
Errors are SQLAlchemy's: a driver error is raised as the matching `sqlalchemy.exc.DBAPIError`, and a dead
connection is invalidated and flagged, so retry_once_on_disconnect and the API's 503 answer treat them as
they treat the ORM's.

- PostgreSQL: the connection runs in autocommit, each statement atomic and durable on its own (one round trip).
- SQLite: a read begins deferred (no write lock); a write begins IMMEDIATE under the request's busy timeout and
  commits (or rolls back) when its block ends.
"""

import functools
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import exc
from sqlalchemy.engine import Dialect

from .database import begin_immediate, busy_timeout_ms
from .extensions import db

Run = Callable[[object, dict], list]


class _Compiled:
    """A statement's SQL for one dialect, its parameter converters and its result row type."""

    def __init__(self, statement, dialect: Dialect):
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = compiled.positiontup  # None for named parameter styles (psycopg's pyformat)
        self.converters = {}
        for name, bind in compiled.binds.items():
            converter = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if converter is not None:
                self.converters[name] = converter
        columns = list(getattr(statement, "selected_columns", None) or getattr(statement, "exported_columns", ()))
        self.row_type = namedtuple("Row", [column.key for column in columns], rename=True) if columns else None
        self.readers = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]

    def parameters(self, values: dict):
        converted = {name: (self.converters[name](value) if name in self.converters else value)
                     for name, value in values.items()}
        return converted if self.order is None else [converted[name] for name in self.order]

    def rows(self, cursor) -> list:
        if self.row_type is None or cursor.description is None:
            return []
        readers = self.readers
        return [self.row_type(*(read(value) if read else value for read, value in zip(readers, row, strict=True)))
                for row in cursor.fetchall()]


@functools.cache
def _compile(statement, dialect_name: str) -> _Compiled:
    return _Compiled(statement, db.engine.dialect)


def _database_error(error: Exception, dialect: Dialect, raw, cursor, sql: str | None):
    """The SQLAlchemy exception for a driver error. A dead connection is invalidated, and with it the pool's
    idle ones, as SQLAlchemy does on a disconnect: after a database restart they are all dead."""
    disconnect = dialect.is_disconnect(error, raw.driver_connection if raw is not None else None, cursor)
    if disconnect:
        if raw is not None:
            raw.invalidate(error)
        db.engine.dispose()  # closes the idle connections; those checked out are dropped when returned
    return exc.DBAPIError.instance(sql, None, error, dialect.loaded_dbapi.Error, connection_invalidated=disconnect,
                                   dialect=dialect)


@contextmanager
def direct(write: bool) -> Iterator[Run]:
    """A function that runs Core statements on one pooled connection (see the module's docstring); on SQLite a
    `write` block is one transaction, committed when the block ends."""
    engine = db.engine
    dialect = engine.dialect
    driver_error = dialect.loaded_dbapi.Error
    try:
        raw = engine.raw_connection()
    except driver_error as error:
        raise _database_error(error, dialect, None, None, None) from error
    connection = raw.driver_connection
    postgresql = dialect.name == "postgresql"
    state = {"sql": None, "cursor": None}

    def run(statement, values: dict) -> list:
        compiled = _compile(statement, dialect.name)
        cursor = state["cursor"]
        state["sql"] = compiled.sql
        cursor.execute(compiled.sql, compiled.parameters(values))
        return compiled.rows(cursor)

    try:
        try:
            state["cursor"] = raw.cursor()
            if postgresql:
                connection.autocommit = True
            else:
                if write:
                    wanted = busy_timeout_ms()
                    begin_immediate(connection, wanted, lambda: state["cursor"].execute("BEGIN IMMEDIATE"))
                    raw.info["busy_timeout_ms"] = wanted
                else:
                    state["cursor"].execute("BEGIN")
            yield run
            if not postgresql:
                state["sql"] = "COMMIT"
                connection.commit()
        except driver_error as error:
            raise _database_error(error, dialect, raw, state["cursor"], state["sql"]) from error
        finally:
            if not postgresql and connection.in_transaction:
                connection.rollback()
            if state["cursor"] is not None:
                state["cursor"].close()
            if postgresql and not connection.closed:
                connection.autocommit = False
    except driver_error as error:  # the clean-up itself found the connection dead
        raise _database_error(error, dialect, raw, None, None) from error
    finally:
        raw.close()
