"""isolation: an endpoint that accepts TCP and never answers is owed 500 messages; beside it a healthy webhook
gets 20 events/s: its latency."""

import time

from clients import EventClient, asset_event
from deliveries import latencies_ms, latency_summary, wait_arrivals, warm_up
from harness import CLIENT_THREADS, Bench, Product, Table, log
from receivers import RecordingReceiver
from servers import SilentServer
from stack import QueueWatch

TARGET_P99_MS = ("<", 1000)


def measure_healthy_beside_stuck(bench: Bench, name: str, stuck_url: str, receiver: RecordingReceiver, owed: int,
                                 rate: float, seconds: float, describe_stuck, environment: dict | None = None,
                                 arrival_wait: float = 30) -> dict:
    """Owe `owed` events to a stuck endpoint, then pace events to a healthy webhook: its latencies and the run's
    figures; describe_stuck(bench, stuck_webhook_id) reports what the stuck endpoint saw."""
    product = client = watch = None
    try:
        stuck, _ = bench.make_webhooks([(stuck_url, ("asset.delete",)), (receiver.url("/healthy"), ("asset.create",))])
        token = bench.make_token()
        product = Product(bench, name, bench.cores, environment=environment).start()
        client = EventClient(product.base_url, token, CLIENT_THREADS)
        warm_up(bench, client, 10, 1)
        watch = QueueWatch(bench.redis.url)
        started = time.time()
        owed_posts = client.post_all([asset_event("asset.delete") for _ in range(owed)])
        log(f"{name}: {sum(p.status == 202 for p in owed_posts)} events owed to the stuck endpoint posted in "
            f"{time.time() - started:.1f} s")
        meter = bench.cpu_meter(product).start()
        posted = client.post_paced(rate, seconds, asset_event)
        wait_arrivals(receiver, posted, timeout=arrival_wait)
        cpu = meter.stop()
        values, missing = latencies_ms(posted, receiver.arrival_times())
        counts = bench.database.status_counts()
        deferrals = watch.snapshot()["delayed"]
        stuck_figures = describe_stuck(bench, stuck)
    finally:
        if watch is not None:
            watch.stop()
        if client is not None:
            client.close()
        if product is not None:
            # The stuck endpoint holds sends until the deadline; don't wait for the graceful stop here.
            product.stop(timeout=15)
    summary = latency_summary(values)
    log(f"{name}: healthy p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms "
        f"({missing} missing); stuck endpoint: {stuck_figures}; {deferrals} deferrals")
    return {"owed": owed, "rate": rate, "seconds": seconds, "events": len(posted),
            "rejected": sum(p.status != 202 for p in posted), "missing": missing, **summary,
            "stuck_endpoint": stuck_figures, "deferrals": deferrals, "statuses": counts, "cpu": cpu}


def run(bench: Bench) -> dict:
    sizes = bench.sizes
    bench.fresh_state()
    receiver = RecordingReceiver(bench.tls).start()
    silent = SilentServer()
    try:
        return measure_healthy_beside_stuck(
            bench, "isolation", silent.url("/never"), receiver, sizes.isolation_owed, sizes.isolation_rate,
            sizes.isolation_seconds, lambda bench, webhook_id: {"accepted": silent.accepted,
                                                                "most_open": silent.most_open})
    finally:
        silent.stop()
        receiver.stop()


def rows(bench: Bench, table: Table) -> None:
    iso = bench.results["isolation"]
    table.add("isolation", f"healthy p50 ms ({iso['owed']} owed to a silent endpoint)", iso["p50_ms"])
    table.add("isolation", "healthy p99 ms", iso["p99_ms"], TARGET_P99_MS)
    if iso["missing"]:
        table.add("isolation", "healthy events never delivered", iso["missing"])
