"""The synthetic log: rows generated oldest first and loaded fast into SQLite or PostgreSQL."""

import json
import random
import sqlite3
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from webhooks_app.events import EVENT_TYPES
from webhooks_app.models import MessageStatus

from .common import (
    ATTEMPT_COLUMNS,
    ATTEMPT_OFFSETS,
    EVENT_COLUMNS,
    FAILING_SHARE,
    LOADED_TABLES,
    MESSAGE_COLUMNS,
    QUEUED_SHARE,
    QUEUED_WINDOW,
    RECENT_ALL_SENT,
    RETRIED_SENT_SHARE,
    log,
)

SUBJECT_KEYS = {"asset": "assetId", "folder": "folderId", "user": "targetUserId"}

@dataclass
class FillSummary:
    events: int = 0
    messages: int = 0
    attempts: int = 0
    by_status: dict = field(default_factory=lambda: defaultdict(int))
    seconds: float = 0.0


def generate_rows(messages: int, webhook_ids: list[int], days: int, now: datetime, summary: FillSummary,
                  events_per_chunk: int = 2500, seed: int = 20261128):
    """Yield (events, messages, attempts) row chunks, oldest first: one event fanned out to every webhook."""
    rng = random.Random(seed)
    fan_out = len(webhook_ids)
    event_count = max(1, messages // fan_out)
    start = now - timedelta(days=days) + timedelta(minutes=1)
    step = (now - timedelta(minutes=1) - start) / event_count
    event_names = [event.name for event in EVENT_TYPES]
    message_id = attempt_id = 0
    for first in range(0, event_count, events_per_chunk):
        event_rows, message_rows, attempt_rows = [], [], []
        for index in range(first, min(first + events_per_chunk, event_count)):
            event_id = index + 1
            created = start + step * index
            age = (now - created).total_seconds()
            event_type = rng.choice(event_names)
            event_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            subject_id = 100000 + index  # what the event is about: an asset, folder or user of its own
            payload = {SUBJECT_KEYS[event_type.split(".")[0]]: subject_id,
                       "systemEventType": event_type.upper().replace(".", "_"),
                       "eventId": event_uuid, "eventTime": int(created.replace(tzinfo=UTC).timestamp() * 1000),
                       "userId": 1 + index % 50}
            event_rows.append((event_id, event_uuid, event_type, json.dumps(payload), subject_id, created))
            for webhook_id in webhook_ids:
                message_id += 1
                draw = rng.random()
                attempts = []  # (offset seconds, succeeded)
                next_attempt_at = None
                failure_reason = None
                if age < RECENT_ALL_SENT.total_seconds():
                    status, attempts = MessageStatus.SENT, [(0.2, True)]
                elif draw < FAILING_SHARE:
                    done = [offset for offset in ATTEMPT_OFFSETS if offset + 1 < age]
                    attempts = [(offset + 0.2, False) for offset in done]
                    if len(done) == len(ATTEMPT_OFFSETS):
                        status = MessageStatus.FAILED
                        failure_reason = f"All {len(done)} attempts failed; the last one: HTTP 500."
                    else:
                        status = MessageStatus.SCHEDULED_RETRY
                        next_attempt_at = created + timedelta(seconds=ATTEMPT_OFFSETS[len(done)])
                elif draw < FAILING_SHARE + QUEUED_SHARE and age < QUEUED_WINDOW.total_seconds():
                    status, next_attempt_at = MessageStatus.QUEUED, created
                elif draw < FAILING_SHARE + QUEUED_SHARE + RETRIED_SENT_SHARE:
                    status, attempts = MessageStatus.SENT, [(0.2, False), (ATTEMPT_OFFSETS[1] + 0.2, True)]
                else:
                    status, attempts = MessageStatus.SENT, [(0.2, True)]
                updated = created
                for number, (offset, succeeded) in enumerate(attempts, start=1):
                    attempt_id += 1
                    started = created + timedelta(seconds=offset)
                    duration = rng.randint(25, 400) if succeeded else rng.choice((180, 2200, 10000))
                    updated = started + timedelta(milliseconds=duration)
                    if succeeded:
                        attempt_rows.append((attempt_id, message_id, webhook_id, number, started, duration, True,
                                             200, None, None, '{"ok":true}'))
                    else:
                        attempt_rows.append((attempt_id, message_id, webhook_id, number, started, duration, False,
                                             500, "http_status", "HTTP 500", "Internal Server Error"))
                message_rows.append((
                    message_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)), webhook_id, event_id,
                    event_type, False, status, len(attempts), next_attempt_at, None, created, failure_reason,
                    created, updated,
                ))
                summary.by_status[status] += 1
        summary.events += len(event_rows)
        summary.messages += len(message_rows)
        summary.attempts += len(attempt_rows)
        yield event_rows, message_rows, attempt_rows


def sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DateTime storage format (always with microseconds), so comparisons still work."""
    return None if value is None else value.isoformat(sep=" ", timespec="microseconds")


def _sqlite_rows(rows, columns):
    time_positions = [index for index, name in enumerate(columns) if name.endswith("_at")]
    for row in rows:
        row = list(row)
        for index in time_positions:
            row[index] = sqlite_time(row[index])
        yield row


def fill_sqlite(path: str, chunks) -> None:
    """Load with executemany in one transaction, secondary indexes dropped and rebuilt, no journal."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")  # the load only; WAL is switched back on below
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")  # 256 MiB
        connection.execute("PRAGMA temp_store=MEMORY")
        connection.execute("PRAGMA foreign_keys=OFF")
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN "
            f"({', '.join('?' * len(LOADED_TABLES))})", LOADED_TABLES).fetchall()
        connection.execute("BEGIN")
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        statements = {
            table: f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for table, columns in zip(LOADED_TABLES, (EVENT_COLUMNS, MESSAGE_COLUMNS, ATTEMPT_COLUMNS),
                                      strict=True)
        }
        for event_rows, message_rows, attempt_rows in chunks:
            connection.executemany(statements["events"], _sqlite_rows(event_rows, EVENT_COLUMNS))
            connection.executemany(statements["messages"], _sqlite_rows(message_rows, MESSAGE_COLUMNS))
            connection.executemany(statements["attempts"], _sqlite_rows(attempt_rows, ATTEMPT_COLUMNS))
        log(f"  rows inserted; rebuilding {len(indexes)} indexes")
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def fill_postgresql(url: str, chunks) -> None:
    """Load with COPY, secondary indexes dropped and rebuilt, then VACUUM ANALYZE as autovacuum would."""
    with psycopg.connect(url) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
            cursor.execute("SET maintenance_work_mem = '256MB'")
            try:
                with connection.transaction():  # a savepoint: skip the per-row FK triggers when allowed
                    cursor.execute("SET session_replication_role = replica")
            except psycopg.errors.InsufficientPrivilege:
                log("  (not superuser: foreign keys are checked row by row during the load)")
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
                (list(LOADED_TABLES),))
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            for event_rows, message_rows, attempt_rows in chunks:
                for table, columns, rows in (("events", EVENT_COLUMNS, event_rows),
                                             ("messages", MESSAGE_COLUMNS, message_rows),
                                             ("attempts", ATTEMPT_COLUMNS, attempt_rows)):
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            log(f"  rows copied; rebuilding {len(indexes)} indexes")
            for _, sql in indexes:
                cursor.execute(sql)
            for table in LOADED_TABLES:
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT coalesce(max(id), 1) FROM {table}))")
            cursor.execute("RESET session_replication_role")
        connection.commit()
    with psycopg.connect(url, autocommit=True) as connection:
        for table in LOADED_TABLES:
            connection.execute(f"VACUUM ANALYZE {table}")
        try:
            connection.execute("CHECKPOINT")
        except psycopg.Error:
            pass


# ---------------------------------------------------------------------------------------------------------------
# Databases


def prepare_postgresql(url: str) -> None:
    """Create the database when missing, then drop and recreate its schema public."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    dbname = params.get("dbname", "postgres")
    try:
        psycopg.connect(url).close()
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            raise
        with psycopg.connect(psycopg.conninfo.make_conninfo(url, dbname="postgres"), autocommit=True) as admin:
            log(f"creating database {dbname}")
            admin.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")

