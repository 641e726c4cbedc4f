"""pipeline: the product end to end: the Procfile's web, worker (cores processes x 8 threads) and scheduler;
events posted to POST /api/v1/events by 8 client threads, each fanning out to 10 webhooks on nginx; timed until
every message is Sent in the database. Also with 1 and 2 worker processes (scaling), and with the 10 webhooks on
10 distinct nginx ports (10 endpoints, so the per-endpoint send cap does not apply to all of them at once)."""

import time

from clients import EventClient, Posted, asset_event
from cpu_meter import cpu_per_unit
from deliveries import last_sent_epoch, warm_up
from harness import CLIENT_THREADS, PIPELINE_WEBHOOKS, WORKER_THREADS, Bench, Product, Table, log, percentile, rounded
from stack import QueueWatch

TARGET_OVER_RAW = (">=", 0.30)
TARGET_OVER_NAIVE = (">=", 0.8)


def run_pipeline(bench: Bench, label: str, processes: int, endpoints: int) -> dict:
    sizes = bench.sizes
    bench.fresh_state()
    nginx = bench.nginx
    bench.make_webhooks([(nginx.url(f"/hook/{n}", port_index=n if endpoints > 1 else 0), ("asset.create",))
                         for n in range(PIPELINE_WEBHOOKS)])
    token = bench.make_token()
    product = Product(bench, label, processes).start()
    client = EventClient(product.base_url, token, CLIENT_THREADS)
    watch = None
    try:
        warm_up(bench, client, 10, PIPELINE_WEBHOOKS)
        sent_before = bench.database.sent_count()
        watch = QueueWatch(bench.redis.url)
        meter = bench.cpu_meter(product).start()
        started = time.time()
        futures = [client.submit(asset_event()) for _ in range(sizes.pipeline_events)]
        peak_queue = 0
        redis_client = bench.redis.client()
        deadline = time.monotonic() + sizes.wait_seconds
        posted_at = None
        while time.monotonic() < deadline:
            if posted_at is None and all(future.done() for future in futures):
                posted_at = time.time()
            if posted_at is not None:
                accepted = sum(future.result().messages for future in futures)
                if bench.database.sent_count() >= sent_before + accepted:
                    break
            peak_queue = max(peak_queue, redis_client.llen("dramatiq:deliveries"))
            time.sleep(0.1)
        cpu = meter.stop()
        posted: list[Posted] = [future.result(timeout=60) for future in futures]
        counts = bench.database.status_counts()
        queue_counts = watch.snapshot()
        last = last_sent_epoch(bench)
    finally:
        if watch is not None:
            watch.stop()
        client.close()
        product.stop()
    accepted = sum(p.messages for p in posted)
    rejected = [p for p in posted if p.status != 202]
    delivered = counts.get("sent", 0) - sent_before
    complete = delivered >= accepted and not rejected
    seconds = (last or time.time()) - started
    rate = delivered / seconds if seconds > 0 else 0.0
    round_trips = [p.round_trip_ms for p in posted if p.status == 202]
    log(f"{label}: {len(posted)} events -> {delivered}/{accepted} Sent in {seconds:.2f} s: {rate:.0f} deliveries/s "
        f"(intake {len(posted) / ((posted_at or time.time()) - started):.0f} events/s; "
        f"{queue_counts['delayed']} deferrals; statuses {counts})")
    return {
        "label": label, "worker_processes": processes, "worker_threads": WORKER_THREADS, "endpoints": endpoints,
        "events": len(posted), "rejected": len(rejected), "retried_posts": sum(p.retried for p in posted),
        "accepted_messages": accepted, "delivered": delivered,
        "complete": complete, "seconds": round(seconds, 3), "deliveries_per_s": round(rate, 1),
        "intake_events_per_s": round(len(posted) / ((posted_at or time.time()) - started), 1),
        "intake_p50_ms": rounded(percentile(round_trips, 0.5)), "intake_p99_ms": rounded(percentile(round_trips, 0.99)),
        "deferrals": queue_counts["delayed"], "enqueues": queue_counts["enqueued"], "peak_queue_length": peak_queue,
        "statuses": counts, "cpu": cpu, "cpu_ms_per_delivery": cpu_per_unit(cpu, delivered),
        "first_rejection": rejected[0].error if rejected else None,
    }


def run(bench: Bench) -> dict:
    runs = {"main": run_pipeline(bench, "pipeline", bench.cores, endpoints=1)}
    for processes in (1, 2):
        if processes != bench.cores:
            runs[f"processes_{processes}"] = run_pipeline(bench, f"pipeline-{processes}proc", processes, endpoints=1)
        else:
            runs[f"processes_{processes}"] = runs["main"]
    runs["endpoints_10"] = run_pipeline(bench, "pipeline-10endpoints", bench.cores, endpoints=PIPELINE_WEBHOOKS)
    one, two = runs["processes_1"]["deliveries_per_s"], runs["processes_2"]["deliveries_per_s"]
    runs["scaling_2_over_1"] = round(two / one, 2) if one else None
    return runs


def rows(bench: Bench, table: Table) -> None:
    r = bench.results
    raw = r.get("raw", {}).get("requests_per_s")
    naive = r.get("naive", {}).get("deliveries_per_s")
    p = r["pipeline"]
    main = p["main"]["deliveries_per_s"]
    table.add("pipeline", f"deliveries/s, {bench.cores}x{WORKER_THREADS}, 10 webhooks on 1 endpoint (context)", main)
    table.add("pipeline", "pipeline/raw", round(main / raw, 3) if raw else None, TARGET_OVER_RAW)
    table.add("pipeline", "pipeline/naive", round(main / naive, 3) if naive else None, TARGET_OVER_NAIVE)
    table.add("pipeline", "scaling: 2 worker processes / 1", p["scaling_2_over_1"])
    table.add("pipeline", "deliveries/s with 1 worker process (context)", p["processes_1"]["deliveries_per_s"])
    e10 = p["endpoints_10"]["deliveries_per_s"]
    table.add("pipeline", "10 webhooks on 10 endpoints: deliveries/s (context)", e10)
    table.add("pipeline", "10 endpoints: pipeline/raw", round(e10 / raw, 3) if raw else None, TARGET_OVER_RAW)
    table.add("pipeline", "10 endpoints / 1 endpoint", round(e10 / main, 2) if main else None)
    table.add("pipeline", "deferrals per delivery (1 endpoint)",
              round(p["main"]["deferrals"] / max(1, p["main"]["delivered"]), 2))
