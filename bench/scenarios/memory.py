"""memory: 10k then 100k messages in Scheduled retry (far future), worker and scheduler running: peak RSS."""

import json
import time

from harness import MB, Bench, Product, Table, log, rounded
from stack import tree_rss

TARGET_MB = ("<", 300)


EVENT_PAYLOAD = json.dumps({"assetId": 1, "systemEventType": "ASSET_CREATE", "eventId": "x", "eventTime": 0,
                            "userId": 1})


def insert_scheduled_retries(bench: Bench, webhook_id: int, rows: int) -> float:
    """`rows` messages in Scheduled retry, each of an event of its own (a webhook has one pending message per event)."""
    started = time.monotonic()
    bench.database.execute(
        """
        WITH new_events AS (
            INSERT INTO events (event_uuid, scope, event_type, payload, created_at)
            SELECT gen_random_uuid()::text, 'bench', 'asset.create', %(payload)s, now() AT TIME ZONE 'utc'
            FROM generate_series(1, %(rows)s)
            RETURNING id)
        INSERT INTO messages (message_uuid, webhook_id, event_id, event_type, is_test, status, attempts_made,
                              next_attempt_at, claimed_until, enqueued_at, failure_reason, created_at, updated_at)
        SELECT gen_random_uuid()::text, %(webhook)s, new_events.id, 'asset.create', false, 'scheduled_retry', 1,
               (now() AT TIME ZONE 'utc') + interval '30 days', NULL, NULL, NULL,
               (now() AT TIME ZONE 'utc') - interval '1 minute', (now() AT TIME ZONE 'utc') - interval '1 minute'
        FROM new_events
        """,
        {"webhook": webhook_id, "rows": rows, "payload": EVENT_PAYLOAD},
    )
    bench.database.execute("ANALYZE messages")
    return time.monotonic() - started


def run(bench: Bench) -> dict:
    sizes = bench.sizes
    bench.fresh_state()
    (webhook_id,) = bench.make_webhooks([(bench.nginx.url("/memory"), ("asset.create",))])
    steps = []
    present = 0
    for rows in sizes.memory_rows:
        seconds = insert_scheduled_retries(bench, webhook_id, rows - present)
        present = rows
        log(f"memory: {rows} messages in Scheduled retry ({seconds:.1f} s to insert); sampling for "
            f"{sizes.memory_seconds:g} s")
        bench.redis.client().flushall()
        product = Product(bench, f"memory-{rows}", bench.cores, web=False).start()
        peaks: dict[int, tuple[str, int]] = {}
        scheduler_peak = 0
        try:
            deadline = time.monotonic() + sizes.memory_seconds
            while time.monotonic() < deadline:
                for pid, (what, rss) in tree_rss(product.parts["worker"].pid).items():
                    if rss > peaks.get(pid, ("", 0))[1]:
                        peaks[pid] = (what, rss)
                for _, rss in tree_rss(product.parts["scheduler"].pid).values():
                    scheduler_peak = max(scheduler_peak, rss)
                time.sleep(0.25)
        finally:
            product.stop()
        worker_main = product.parts["worker"].pid
        children = [rss for pid, (_, rss) in peaks.items() if pid != worker_main]
        steps.append({
            "rows": rows,
            "worker_process_peak_mb": round(max(children or [0]) / MB, 1),
            "worker_main_peak_mb": round(peaks.get(worker_main, ("", 0))[1] / MB, 1),
            "worker_total_peak_mb": round(sum(rss for _, rss in peaks.values()) / MB, 1),
            "scheduler_peak_mb": round(scheduler_peak / MB, 1),
            "processes": {str(pid): {"cmd": what, "peak_mb": round(rss / MB, 1)} for pid, (what, rss) in peaks.items()},
            "statuses": bench.database.status_counts(),
        })
        log(f"memory: at {rows} rows: worker processes peak {steps[-1]['worker_process_peak_mb']} MB, "
            f"worker main {steps[-1]['worker_main_peak_mb']} MB, scheduler {steps[-1]['scheduler_peak_mb']} MB")
    first, last = steps[0], steps[-1]
    growth = (last["worker_process_peak_mb"] / first["worker_process_peak_mb"]
              if first["worker_process_peak_mb"] else None)
    return {"steps": steps, "growth_ratio": rounded(growth, 2), "seconds": sizes.memory_seconds}


def rows(bench: Bench, table: Table) -> None:
    memory = bench.results["memory"]
    for step in memory["steps"]:
        table.add("memory", f"worker process peak RSS MB at {step['rows']:,} rows", step["worker_process_peak_mb"],
                  TARGET_MB)
        table.add("memory", f"scheduler peak RSS MB at {step['rows']:,} rows", step["scheduler_peak_mb"], TARGET_MB)
    table.add("memory", "worker peak growth (last/first)", memory["growth_ratio"])
