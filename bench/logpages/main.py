"""Run the log-pages benchmark on one or both databases and print the report (see bench/logpages/__init__.py)."""

import argparse
import html
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import text

from webhooks_app import create_app
from webhooks_app.config import normalize_database_url
from webhooks_app.events import EVENT_TYPES
from webhooks_app.extensions import db
from webhooks_app.services.users import create_user
from webhooks_app.services.webhooks import WebhookFields, create_webhook

from .common import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    DEFAULT_PG_URL,
    LOG_POLLER,
    PAGE_TARGET_MS,
    WEBHOOKS_POLLER,
    log,
    utcnow,
)
from .fill import FillSummary, fill_postgresql, fill_sqlite, generate_rows, prepare_postgresql
from .measure import PageResult, ServerCpu, SqlRecorder, call_timers, explain_page, short_sql, sign_in, time_page
from .prune import PruneResult, run_prune
from .report import markdown_report, server_text


@dataclass
class DatabaseResult:
    name: str
    fill: FillSummary
    pages: list[PageResult]
    prune: PruneResult | None
    sizes: dict


def database_sizes(app) -> dict:
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            path = Path(db.engine.url.database)
            size = path.stat().st_size
        else:
            size = db.session.scalar(text("SELECT pg_database_size(current_database())"))
        db.session.remove()
    return {"bytes": size}


def wait_for_quiet(limit: float, patience: float = 600.0) -> None:
    """Wait until the 1-minute load average is under `limit` (other work on a shared machine skews timings)."""
    deadline = time.monotonic() + patience
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        log(f"  load average {os.getloadavg()[0]:.1f} ≥ {limit}: waiting")
        time.sleep(15)


def sample_message(app, webhook_id: int, message_id: int) -> dict:
    """A message of the webhook near `message_id` to search for: its messageId, eventId and subject id."""
    with app.app_context():
        row = db.session.execute(text(
            "SELECT m.message_uuid, e.event_uuid, e.subject_id FROM messages m JOIN events e ON e.id = m.event_id "
            "WHERE m.webhook_id = :webhook AND m.id <= :id ORDER BY m.id DESC LIMIT 1"),
            {"webhook": webhook_id, "id": message_id}).one()
        db.session.remove()
    return {"message": row[0], "event": row[1], "subject": row[2]}


def page_list(app, client, webhook_id: int, fill: FillSummary) -> list[tuple]:
    """Every page timed: (name, URL, expected status, target median ms or None)."""
    log_url = f"/system/integrations/api/webhooks/{webhook_id}/log"
    everything = "/system/integrations/api/activity"
    middle_id = fill.messages // 2
    sample = sample_message(app, webhook_id, middle_id)
    first_page = client.get(log_url).get_data(as_text=True)
    log_poll_url = html.unescape(LOG_POLLER.search(first_page).group(1))
    filtered_page = client.get(f"{log_url}?type=asset.create&status=failed").get_data(as_text=True)
    filtered_poll_url = html.unescape(LOG_POLLER.search(filtered_page).group(1))
    webhooks_page = client.get("/system/integrations/api/webhooks").get_data(as_text=True)
    webhooks_poll_url = html.unescape(WEBHOOKS_POLLER.search(webhooks_page).group(1))
    target = PAGE_TARGET_MS
    return [
        ("Log, first page", log_url, 200, target),
        ("Log, Status = Failed", f"{log_url}?status=failed", 200, target),
        ("Log, last page (Oldest)", f"{log_url}?oldest=1", 200, target),
        ("Log, deep page (before=middle id)", f"{log_url}?before={middle_id}", 200, target),
        ("Log, live poll (nothing new)", log_poll_url, 204, target),
        ("Log, search messageId", f"{log_url}?q={sample['message']}", 200, target),
        ("Log, search eventId", f"{log_url}?q={sample['event']}", 200, target),
        ("Log, search subject id", f"{log_url}?q={sample['subject']}", 200, target),
        ("Log, Event = asset.create", f"{log_url}?type=asset.create", 200, target),
        ("Log, Event = asset.create, Oldest", f"{log_url}?type=asset.create&oldest=1", 200, target),
        ("Log, Time = last hour", f"{log_url}?range=1h", 200, target),
        ("Log, Time = last hour, Oldest", f"{log_url}?range=1h&oldest=1", 200, target),
        ("Log, Time = 24 hours", f"{log_url}?range=24h", 200, target),
        ("Log, Time = 7 days, Oldest", f"{log_url}?range=7d&oldest=1", 200, target),
        ("Log, Time = 30 days", f"{log_url}?range=30d", 200, target),
        ("Log, Event + Failed + 7 days", f"{log_url}?type=asset.create&status=failed&range=7d", 200, target),
        ("Log, Event + Queued + last hour", f"{log_url}?type=user.update&status=queued&range=1h", 200, target),
        ("Log, live poll with filters", filtered_poll_url, 204, target),
        ("Webhooks page", "/system/integrations/api/webhooks", 200, target),
        ("Webhooks page, live poll", webhooks_poll_url, 204, target),
        ("All activity, first page", everything, 200, target),
        ("All activity, summary (fetched by the page)", f"{everything}/summary", 200, None),
        ("All activity, Status = Failed", f"{everything}?status=failed", 200, target),
        ("All activity, Webhook filter", f"{everything}?webhook={webhook_id}", 200, target),
        ("All activity, search eventId", f"{everything}?q={sample['event']}", 200, target),
        ("All activity, search subject id", f"{everything}?q={sample['subject']}", 200, target),
        ("All activity, Event = folder.update", f"{everything}?type=folder.update", 200, target),
        ("All activity, Time = last hour, Oldest", f"{everything}?range=1h&oldest=1", 200, target),
        ("All activity, Webhook + Event + Failed + 30 days",
         f"{everything}?webhook={webhook_id}&type=asset.create&status=failed&range=30d", 200, target),
    ]


def bench_database(name: str, args) -> DatabaseResult:
    workdir = tempfile.mkdtemp(prefix="webhooks-bench-")
    if name == "sqlite":
        sqlite_path = str(Path(workdir) / "bench.sqlite3")
        url = f"sqlite:///{sqlite_path}"
        writer_target = sqlite_path
    else:
        raw_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG_URL)
        raw_url = raw_url.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://")
        prepare_postgresql(raw_url)
        url = normalize_database_url(raw_url)
        writer_target = raw_url
    log(f"== {name}: {url}")
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": os.environ["SECRET_KEY"],
        "REDIS_URL": args.redis_url,
    })
    with app.app_context():
        upgrade()
        webhook_ids = []
        for number in range(1, args.webhooks + 1):
            webhook, _ = create_webhook(WebhookFields(
                f"Receiver {number:02d}", f"https://hooks{number}.example.com/webhooks",
                tuple(event.name for event in EVENT_TYPES), True))
            webhook_ids.append(webhook.id)
        create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()

    fill = FillSummary()
    now = utcnow()
    chunks = generate_rows(args.messages, webhook_ids, args.days, now, fill)
    log(f"filling {args.messages:,} messages over {len(webhook_ids)} webhooks and {args.days} days")
    started = time.perf_counter()
    if name == "sqlite":
        fill_sqlite(sqlite_path, chunks)
        if args.sqlite_analyze:
            with sqlite3.connect(sqlite_path) as connection:
                connection.execute("ANALYZE")
    else:
        fill_postgresql(writer_target, chunks)
    fill.seconds = time.perf_counter() - started
    sizes = database_sizes(app)
    log(f"filled in {fill.seconds:.1f} s: {fill.events:,} events, {fill.messages:,} messages, "
        f"{fill.attempts:,} attempts ({dict(fill.by_status)}); database {sizes['bytes'] / 2**20:,.0f} MiB")

    with app.app_context():
        engine = db.engine
        recorder = SqlRecorder(engine)
    timers = call_timers()
    client = app.test_client()
    sign_in(client)
    server_cpu = ServerCpu(app) if name == "postgresql" else None

    webhook_id = webhook_ids[len(webhook_ids) // 2]
    pages = page_list(app, client, webhook_id, fill)
    if args.max_load:
        wait_for_quiet(args.max_load)
    load_before = os.getloadavg()[0]
    results = []
    for page_name, page_url, expect, target in pages:
        result = time_page(client, recorder, timers, page_name, page_url, expect, args.runs, args.warmups, target,
                           profile=bool(args.profile) and args.profile.lower() in page_name.lower(),
                           server_cpu=server_cpu)
        results.append(result)
        log(f"{page_name:36} median {result.median_ms:8.1f} ms  p95 {result.p95_ms:8.1f} ms  "
            f"CPU {result.cpu_median_ms:7.1f}{server_text(result)} ms  "
            f"SQL {result.sql_median_ms:7.1f} ms in {result.queries} queries  {page_url}")
        log("    " + ", ".join(f"{label} {ms:.1f}" for label, ms in result.parts.items()))
        for sql, ms in result.statements:
            if ms >= args.show_statements_ms:
                log(f"    {ms:8.2f} ms  {short_sql(sql)}")
    sizes["load"] = (load_before, os.getloadavg()[0])
    if args.explain:
        for page_name, page_url, _, _ in pages:
            explain_page(app, client, recorder, page_name, page_url)

    prune = None
    if not args.no_prune:
        log("pruning: prune_log(30) with the clock 40 days ahead, a concurrent UPDATE every 50 ms")
        prune = run_prune(app, recorder, name, writer_target, timedelta(days=40))
        log(f"pruned in {prune.seconds:.1f} s: {prune.messages:,} messages, {prune.attempts:,} attempts, "
            f"{prune.events:,} events in {prune.batches} batches; longest batch {prune.longest_batch_ms:.0f} ms, "
            f"p95 {prune.p95_batch_ms:.0f} ms; concurrent write max {prune.write_max_ms:.0f} ms")
        for kind, ms in sorted(prune.statement_ms.items(), key=lambda item: -item[1]):
            log(f"    {ms / 1000:8.1f} s  {kind}")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if args.keep:
        log(f"kept the database: {url}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return DatabaseResult(name, fill, results, prune, sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--webhooks", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="only pinged by the Webhooks page; never written")
    parser.add_argument("--no-prune", action="store_true", help="skip the prune_log(30) measurement")
    parser.add_argument("--explain", action="store_true", help="print the plan of every page's statements")
    parser.add_argument("--profile", metavar="PAGE", help="cProfile the pages whose name contains PAGE")
    parser.add_argument("--show-statements-ms", type=float, default=1.0,
                        help="list each page's statements taking at least this many ms (median)")
    parser.add_argument("--max-load", type=float, metavar="L",
                        help="before timing pages, wait up to 10 minutes for the 1-minute load average to drop below L")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file (its path is printed)")
    parser.add_argument("--sqlite-analyze", action="store_true",
                        help="run ANALYZE after the SQLite load (the app itself never does)")
    args = parser.parse_args()

    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    results = [bench_database(name, args) for name in databases]
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    print()
    print(f"## Results — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, nproc {nproc}, Python {sys.version.split()[0]}, "
          f"{args.messages:,} messages, {args.webhooks} webhooks, {args.days} days")
    print(f"\nCommand: python bench/log_pages.py {' '.join(sys.argv[1:])}".rstrip())
    print()
    print(markdown_report(results, args))


if __name__ == "__main__":
    main()
