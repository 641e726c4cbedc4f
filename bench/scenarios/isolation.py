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


def run(bench: Bench) -> dict:
    sizes = bench.sizes
    bench.fresh_state()
    receiver = RecordingReceiver(bench.tls).start()
    silent = SilentServer()
    product = client = watch = None
    try:
        bench.make_webhooks([(silent.url("/never"), ("asset.delete",)), (receiver.url("/healthy"), ("asset.create",))])
        token = bench.make_token()
        product = Product(bench, "isolation", bench.cores).start()
        client = EventClient(product.base_url, token, CLIENT_THREADS)
        warm_up(bench, client, 10, 1)
        watch = QueueWatch(bench.redis.url)
        started = time.time()
        owed = client.post_all([asset_event("asset.delete") for _ in range(sizes.isolation_owed)])
        log(f"isolation: {sum(p.status == 202 for p in owed)} events owed to the silent endpoint posted in "
            f"{time.time() - started:.1f} s")
        meter = bench.cpu_meter(product).start()
        posted = client.post_paced(sizes.isolation_rate, sizes.isolation_seconds, asset_event)
        wait_arrivals(receiver, posted, timeout=30)
        cpu = meter.stop()
        values, missing = latencies_ms(posted, receiver.arrival_times())
        counts = bench.database.status_counts()
        deferrals = watch.snapshot()["delayed"]
        held = {"accepted": silent.accepted, "most_open": silent.most_open}
    finally:
        if watch is not None:
            watch.stop()
        if client is not None:
            client.close()
        if product is not None:
            # The silent endpoint holds sends until the 10 s deadline; don't wait for the graceful stop here.
            product.stop(timeout=15)
        silent.stop()
        receiver.stop()
    summary = latency_summary(values)
    log(f"isolation: healthy p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms "
        f"({missing} missing); silent endpoint: {held}; {deferrals} deferrals")
    return {"owed": sizes.isolation_owed, "rate": sizes.isolation_rate, "seconds": sizes.isolation_seconds,
            "events": len(posted), "missing": missing, **summary, "silent_endpoint": held, "deferrals": deferrals,
            "statuses": counts, "cpu": cpu}


def rows(bench: Bench, table: Table) -> None:
    iso = bench.results["isolation"]
    table.add("isolation", f"healthy p50 ms ({iso['owed']} owed to a silent endpoint)", iso["p50_ms"])
    table.add("isolation", "healthy p99 ms", iso["p99_ms"], TARGET_P99_MS)
    if iso["missing"]:
        table.add("isolation", "healthy events never delivered", iso["missing"])
