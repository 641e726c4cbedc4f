"""Where the time of one POST /api/v1/events goes: a per-step breakdown, SQL statements and Redis round trips per
request, and a cProfile, in process (Flask's test client, one thread), on SQLite and PostgreSQL.

    python bench/intake_profile.py                          # both databases, 2,000 requests each
    python bench/intake_profile.py --database sqlite --requests 500 --cprofile 25
    python bench/intake_profile.py --batch 500              # POST /api/v1/events with arrays of 500 events

10 webhooks subscribed to asset.create (nothing is sent: no worker runs), one token, events like the intake
scenario's. PostgreSQL: BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/bench_intake_profile;
created when missing, its schema `public` is DROPPED). Redis: a private redis-server on a free port.

Steps are timed by wrapping the app's functions in memory (no app file is changed); a step the code no longer
has is left out. "SQL" counts cursor executions plus BEGIN/COMMIT/ROLLBACK (psycopg sends each as its own round
trip); "Redis" counts commands sent (a pipeline is one round trip, counted apart).
"""

import argparse
import cProfile
import importlib
import io
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(ROOT / "bin"), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import psycopg  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import event, text  # noqa: E402
from with_redis import RedisServer  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench_intake_profile"

# (label, module, attribute): the steps of a request, timed where the code calls them.
STEPS = [
    ("read body", "webhooks_app.api.routes", "read_body"),
    ("token check", "webhooks_app.api.routes", "check_token"),
    ("token check", "webhooks_app.api.routes", "authenticate"),
    ("parse JSON", "webhooks_app.api.routes", "parse_json"),
    ("validate", "webhooks_app.services.intake", "validate_event"),
    ("validate", "webhooks_app.services.batch_intake", "validate_batch"),
    ("store (event + messages)", "webhooks_app.services.intake", "store_valid_event"),
    ("store (batch: events + fan-out)", "webhooks_app.services.batch_intake", "store_batch"),
    ("Redis: request batches", "webhooks_app.services.intake", "request_batches"),
    ("Redis: request fan-out", "webhooks_app.services.intake", "request_fan_outs"),
    ("jsonify", "webhooks_app.api.routes", "jsonify"),
]


class Timers:
    """Wall time per step (outermost call only, so a step inside another is not counted twice)."""

    def __init__(self):
        self.seconds = Counter()
        self.cpu_seconds = Counter()
        self.calls = Counter()
        self.depth = 0
        self.patched = []

    def wrap(self, label, original):
        def timed(*args, **kwargs):
            self.depth += 1
            started, cpu_started = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.seconds[label] += time.perf_counter() - started
                    self.cpu_seconds[label] += time.thread_time() - cpu_started
                    self.calls[label] += 1
        return timed

    def install(self):
        for label, module_name, attribute in STEPS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            original = getattr(module, attribute, None)
            if original is None:
                continue
            self.patched.append((module, attribute, original))
            setattr(module, attribute, self.wrap(label, original))
        from sqlalchemy.orm import Session

        original_commit = Session.commit
        self.patched.append((Session, "commit", original_commit))
        wrapped = self.wrap("COMMIT (flush, fsync)", original_commit)
        Session.commit = lambda session, *a, **k: wrapped(session, *a, **k)

    def reset(self):
        self.seconds.clear()
        self.calls.clear()


class SqlCounter:
    def __init__(self, engine):
        self.statements = Counter()
        self.seconds = Counter()
        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)
        # psycopg sends BEGIN, COMMIT and ROLLBACK as statements of their own, except in autocommit; on SQLite
        # the app's begin hook runs BEGIN as a statement (counted above), and COMMIT is the driver's.
        postgresql = engine.dialect.name == "postgresql"
        for name in (("begin", "commit", "rollback") if postgresql else ("commit", "rollback")):
            event.listen(engine, name, self.transaction_event(name.upper()))
        self.started = None

    def transaction_event(self, kind: str):
        def note(connection):
            if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                kind_sent = f"{kind} (autocommit: not sent)"
            else:
                kind_sent = kind
            self.statements[kind_sent] += 1
        return note

    def before(self, conn, cursor, statement, parameters, context, executemany):
        self.started = time.perf_counter()

    def after(self, conn, cursor, statement, parameters, context, executemany):
        self.note(statement, time.perf_counter() - self.started)

    def reset(self):
        self.statements.clear()
        self.seconds.clear()

    def count_direct(self):
        """Statements run by webhooks_app.direct_sql (on the driver's cursor, so no engine event sees them)."""
        try:
            direct_sql = importlib.import_module("webhooks_app.direct_sql")
        except ImportError:
            return
        original = direct_sql._compile
        counter = self

        def compile_counted(statement, dialect_name):
            compiled = original(statement, dialect_name)
            counter.note(compiled.sql)
            return compiled

        direct_sql._compile = compile_counted

    def note(self, statement: str, seconds: float = 0.0):
        words = statement.split()
        kind = " ".join(words[:3]) if words else "?"
        if words and words[0].upper() == "WITH":
            kind = "WITH … " + " ".join(w for w in words if w.upper() in ("INSERT", "SELECT", "UPDATE"))[:40]
        self.statements[kind[:60]] += 1
        self.seconds[kind[:60]] += seconds


class RedisCounter:
    """Counts round trips to Redis: every packed command or pipeline sent on a connection."""

    def __init__(self):
        self.round_trips = 0
        self.commands = 0
        original = redis.connection.AbstractConnection.send_packed_command
        counter = self

        def send_packed_command(connection, command, check_health=True):
            counter.round_trips += 1
            return original(connection, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = send_packed_command

    def reset(self):
        self.round_trips = 0


def prepare_postgresql(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")


def make_app(url: str, redis_url: str):
    from flask_migrate import upgrade

    from webhooks_app import create_app
    from webhooks_app.config import normalize_database_url
    from webhooks_app.extensions import db
    from webhooks_app.services.api_tokens import create_api_token
    from webhooks_app.services.webhooks import WebhookFields, create_webhook

    app = create_app({"SQLALCHEMY_DATABASE_URI": normalize_database_url(url), "REDIS_URL": redis_url,
                      "WEBHOOKS_ALLOW_PRIVATE_TARGETS": True})
    with app.app_context():
        upgrade()
        for number in range(10):
            create_webhook(WebhookFields(f"profile {number}", f"https://127.0.0.1:{9000 + number}/hook",
                                         ("asset.create",), True))
        _, token = create_api_token("profile")
        db.session.commit()
        db.session.remove()
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    return app, token


def asset_event() -> dict:
    return {"type": "asset.create", "assetId": 101, "userId": 1, "eventId": str(uuid.uuid4())}


def run_database(name: str, args, redis_url: str) -> dict:
    if name == "sqlite":
        folder = tempfile.mkdtemp(prefix="intake-profile-")
        url = f"sqlite:///{folder}/profile.sqlite3"
    else:
        url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG_URL).replace("postgresql+psycopg://", "postgresql://")
        prepare_postgresql(url)
    app, token = make_app(url, redis_url)
    from webhooks_app.extensions import db

    with app.app_context():
        sql = SqlCounter(db.engine)
    sql.count_direct()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = "/api/v1/events"

    def body() -> bytes:
        if args.batch:
            return json.dumps([asset_event() for _ in range(args.batch)]).encode()
        return json.dumps(asset_event()).encode()

    def post() -> None:
        response = client.post(path, data=body(), headers=headers)
        if response.status_code != 202:
            raise SystemExit(f"{name}: {response.status_code} {response.get_data(as_text=True)[:300]}")

    for _ in range(min(50, args.requests)):
        post()
    timers = Timers()
    timers.install()
    redis_counter = RedisCounter()
    sql.reset()
    redis_counter.reset()
    wall = 0.0
    cpu = 0.0
    for _ in range(args.requests):
        data = body()
        started, cpu_started = time.perf_counter(), time.thread_time()
        response = client.post(path, data=data, headers=headers)
        wall += time.perf_counter() - started
        cpu += time.thread_time() - cpu_started
        if response.status_code != 202:
            raise SystemExit(f"{name}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    for module, attribute, original in timers.patched:
        setattr(module, attribute, original)
    n = args.requests
    per = {label: 1000 * seconds / n for label, seconds in timers.seconds.items()}
    per_cpu = {label: 1000 * seconds / n for label, seconds in timers.cpu_seconds.items()}
    result = {"database": name, "requests": n, "batch": args.batch, "wall_ms": 1000 * wall / n,
              "cpu_ms": 1000 * cpu / n, "steps_ms": per, "steps_cpu_ms": per_cpu,
              "sql_per_request": {k: v / n for k, v in sql.statements.items()},
              "sql_ms": {k: 1000 * v / n for k, v in sql.seconds.items()},
              "redis_round_trips_per_request": redis_counter.round_trips / n}
    if args.cprofile:
        profiler = cProfile.Profile(time.process_time)  # CPU time: waits on the database or Redis do not count
        profiler.enable()
        for _ in range(min(args.requests, 500)):
            post()
        profiler.disable()
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats(args.sort).print_stats(args.cprofile)
        result["cprofile"] = stream.getvalue()
    with app.app_context():
        if name == "postgresql":
            with db.engine.connect() as connection:
                result["server"] = connection.execute(text("SELECT version()")).scalar().split(",")[0]
        db.engine.dispose()
    return result


def trivial_reference(args) -> dict:
    """The bench's trivial Flask view (bench/trivial_app.py) through the same test client: CPU per request."""
    from trivial_app import app

    client = app.test_client()
    headers = {"Content-Type": "application/json"}
    for _ in range(50):
        client.post("/api/v1/events", data=json.dumps(asset_event()).encode(), headers=headers)
    wall = cpu = 0.0
    for _ in range(args.requests):
        data = json.dumps(asset_event()).encode()
        started, cpu_started = time.perf_counter(), time.thread_time()
        client.post("/api/v1/events", data=data, headers=headers)
        wall += time.perf_counter() - started
        cpu += time.thread_time() - cpu_started
    return {"wall_ms": 1000 * wall / args.requests, "cpu_ms": 1000 * cpu / args.requests}


def report(result: dict) -> str:
    n = result["requests"]
    lines = [f"### {result['database']}: {n} requests" + (f" of {result['batch']} events" if result["batch"] else ""),
             "", f"wall {result['wall_ms']:.2f} ms per request, CPU {result['cpu_ms']:.2f} ms (this process; "
             "PostgreSQL's own CPU not included)", "",
             "| Step | wall ms per request | share | CPU ms |", "|---|---:|---:|---:|"]
    steps = dict(sorted(result["steps_ms"].items(), key=lambda item: -item[1]))
    for label, ms in steps.items():
        lines.append(f"| {label} | {ms:.3f} | {100 * ms / result['wall_ms']:.0f} % | "
                     f"{result['steps_cpu_ms'].get(label, 0):.3f} |")
    rest = result["wall_ms"] - sum(steps.values())
    rest_cpu = result["cpu_ms"] - sum(result["steps_cpu_ms"].values())
    lines.append(f"| rest (Flask, hooks, test client) | {rest:.3f} | {100 * rest / result['wall_ms']:.0f} % | "
                 f"{rest_cpu:.3f} |")
    lines += ["", "| SQL statement | per request | ms per request |", "|---|---:|---:|"]
    for kind, count in sorted(result["sql_per_request"].items(), key=lambda item: -item[1]):
        lines.append(f"| `{kind}` | {count:.2f} | {result['sql_ms'].get(kind, 0):.3f} |")
    sent = sum(count for kind, count in result["sql_per_request"].items() if "not sent" not in kind)
    lines.append(f"| all statements sent (round trips on PostgreSQL) | {sent:.2f} | |")
    lines += ["", f"Redis round trips per request: {result['redis_round_trips_per_request']:.2f}"]
    if "cprofile" in result:
        lines += ["", "```", result["cprofile"].strip(), "```"]
    return "\n".join(lines)


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=0, help="events per request (a JSON array)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="print cProfile's top N")
    parser.add_argument("--sort", default="cumulative", help="cProfile's order: cumulative or tottime")
    args = parser.parse_args(argv)
    os.environ.setdefault("SECRET_KEY", "bench-intake-profile-secret-key-not-for-production")
    os.environ["WEBHOOKS_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="intake-profile-instance-")
    server = RedisServer().start()
    try:
        names = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
        for name in names:
            reference = trivial_reference(args)
            print(f"trivial view (bench/trivial_app.py) through the same client: wall {reference['wall_ms']:.2f} ms, "
                  f"CPU {reference['cpu_ms']:.2f} ms per request\n", flush=True)
            print(report(run_database(name, args, server.url)), flush=True)
            print(flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
