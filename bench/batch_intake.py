"""Batch intake benchmark: events/s through POST /api/v1/events, one event a request vs 500 a request.

    python bin/with_redis.py -- python bench/batch_intake.py                       # SQLite (a fresh temp file)
    python bin/with_redis.py -- python bench/batch_intake.py --database postgresql://postgres@127.0.0.1:5432/DB

The web process runs as the Procfile runs it (gunicorn, 2 workers x 4 threads), 10 enabled webhooks are
subscribed to asset.create, and no worker runs (messages stay Queued). Client threads on this machine post
`--single` events one per request (4 threads), then `--batches` batches of 500 (2 threads: a bulk import),
and the figures are printed as a table with the machine's load average.
The database's schema `public` is DROPPED (PostgreSQL) or the file made anew (SQLite): use a scratch database.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WEBHOOKS = 10
BATCH = 500


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(database_url: str, environment: dict[str, str]) -> str:
    """A migrated database with 10 webhooks on asset.create and a token; returns the token."""
    os.environ.update(environment)
    from flask_migrate import upgrade
    from sqlalchemy import text

    from webhooks_app import create_app
    from webhooks_app.extensions import db
    from webhooks_app.services.api_tokens import create_api_token
    from webhooks_app.services.webhooks import WebhookFields, create_webhook

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        upgrade()
        for number in range(WEBHOOKS):
            create_webhook(WebhookFields(f"Bench {number}", f"https://hooks.example.com/{number}", ("asset.create",),
                                         True))
        _, token = create_api_token("bench")
        db.session.commit()
        db.engine.dispose()
    return token


def run_clients(url: str, token: str, bodies: list, threads: int) -> tuple[float, list[float]]:
    """Post every body from `threads` threads with keep-alive sessions; returns wall seconds and latencies."""
    latencies, errors, retries, lock = [], [], [], threading.Lock()
    work = iter(bodies)

    def client():
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {token}"})
        while True:
            with lock:
                body = next(work, None)
            if body is None:
                return
            started = time.perf_counter()
            response = session.post(url, json=body, timeout=60)
            while response.status_code == 503:  # the SQLite write lock was busy: retry, as a client should
                with lock:
                    retries.append(1)
                time.sleep(float(response.headers.get("Retry-After", 1)) / 4)
                response = session.post(url, json=body, timeout=60)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status_code != 202:
                    errors.append(f"{response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise SystemExit(f"{len(errors)} requests refused, e.g. {errors[0]}")
    if retries:
        print(f"({len(retries)} answers were 503 and retried)")
    return time.perf_counter() - started, latencies


def event(asset_id: int) -> dict:
    return {"type": "asset.create", "assetId": asset_id + 1, "userId": 1, "eventId": str(uuid.uuid4())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--single", type=int, default=2000, help="events posted one per request")
    parser.add_argument("--batches", type=int, default=40, help="batches of 500 posted")
    parser.add_argument("--threads", type=int, default=4, help="client threads posting single events")
    parser.add_argument("--batch-threads", type=int, default=2, help="client threads posting batches")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    database_url = args.database or f"sqlite:///{scratch / 'bench.sqlite3'}"
    environment = {"DATABASE_URL": database_url, "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                   "SECRET_KEY": "bench-secret-key-bench-secret-key-0123", "WEBHOOKS_INSTANCE_PATH": str(scratch)}
    token = prepare(database_url, environment)
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
         "--graceful-timeout", "5", "wsgi:app"], cwd=ROOT, env={**os.environ, **environment}, stdout=subprocess.DEVNULL,
        stderr=open(scratch / "web.log", "w"))  # noqa: SIM115
    url = f"http://127.0.0.1:{port}/api/v1/events"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the web process did not start; see {scratch / 'web.log'}") from None
                time.sleep(0.2)
        run_clients(url, token, [event(n) for n in range(50)], args.threads)  # warm-up
        single_seconds, single_latencies = run_clients(url, token, [event(n) for n in range(args.single)],
                                                       args.threads)
        batches = [[event(b * BATCH + n) for n in range(BATCH)] for b in range(args.batches)]
        batch_seconds, batch_latencies = run_clients(url, token, batches, args.batch_threads)
    finally:
        web.terminate()
        try:
            web.wait(timeout=15)
        except subprocess.TimeoutExpired:
            web.kill()
    dialect = database_url.split(":", 1)[0].split("+")[0]
    print(f"\nPOST /api/v1/events on {dialect}, gunicorn 2 workers x 4 threads, {args.threads} client threads for "
          f"single events and {args.batch_threads} for batches, {WEBHOOKS} webhooks per event, no worker, load "
          f"average {os.getloadavg()[0]:.1f}\n")
    print("| what | events | seconds | events/s | request p50 | request p99 |")
    print("|---|---|---|---|---|---|")
    for name, count, seconds, latencies in (
            ("one event a request", args.single, single_seconds, single_latencies),
            (f"{BATCH} events a request", args.batches * BATCH, batch_seconds, batch_latencies)):
        cuts = statistics.quantiles(latencies, n=100)
        print(f"| {name} | {count:,} | {seconds:.2f} | {count / seconds:,.0f} | {cuts[49] * 1000:.0f} ms | "
              f"{cuts[98] * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
