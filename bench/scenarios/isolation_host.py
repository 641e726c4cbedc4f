"""isolation_host: two webhooks on the same https://127.0.0.1:PORT with different paths. One path hangs (reads the
request, never answers); it is owed a few hundred messages first. The other answers 204 at once and gets a steady
rate of events: its latency (arrival - the intake's 202). The product runs with a 3 s deadline
(WEBHOOKS_TIMEOUT_SECONDS) here, so the hanging sends end sooner than with the default 10 s."""

import time

from clients import EventClient, asset_event
from deliveries import latencies_ms, latency_summary, wait_arrivals, warm_up
from harness import CLIENT_THREADS, Bench, Product, Table, log
from receivers import HANG_PREFIX, RecordingReceiver
from stack import QueueWatch

ENVIRONMENT = {"WEBHOOKS_TIMEOUT_SECONDS": "3"}
TARGET_P99_MS = ("<", 1000)
ARRIVAL_WAIT_SECONDS = 60


def run(bench: Bench) -> dict:
    sizes = bench.sizes
    deadline = bench.setting(ENVIRONMENT, "WEBHOOKS_TIMEOUT_SECONDS") or "10"
    bench.fresh_state()
    receiver = RecordingReceiver(bench.tls).start()
    product = client = watch = None
    try:
        hanging, _ = bench.make_webhooks([(receiver.url(f"{HANG_PREFIX}never"), ("asset.delete",)),
                                          (receiver.url("/healthy"), ("asset.create",))])
        token = bench.make_token()
        product = Product(bench, "isolation_host", bench.cores, environment=ENVIRONMENT).start()
        client = EventClient(product.base_url, token, CLIENT_THREADS)
        warm_up(bench, client, 10, 1)
        watch = QueueWatch(bench.redis.url)
        started = time.time()
        owed = client.post_all([asset_event("asset.delete") for _ in range(sizes.isolation_host_owed)])
        log(f"isolation_host: {sum(p.status == 202 for p in owed)} events owed to the hanging path posted in "
            f"{time.time() - started:.1f} s")
        meter = bench.cpu_meter(product).start()
        posted = client.post_paced(sizes.isolation_host_rate, sizes.isolation_host_seconds, asset_event)
        wait_arrivals(receiver, posted, timeout=ARRIVAL_WAIT_SECONDS)
        cpu = meter.stop()
        values, missing = latencies_ms(posted, receiver.arrival_times())
        counts = bench.database.status_counts()
        deferrals = watch.snapshot()["delayed"]
        hanging_timeouts = bench.database.scalar(
            "SELECT count(*) FROM attempts WHERE webhook_id = %s AND error_kind = 'timeout'", (hanging,))
        held = {"requests_held": receiver.hung, "timeouts_recorded": hanging_timeouts}
    finally:
        if watch is not None:
            watch.stop()
        if client is not None:
            client.close()
        if product is not None:
            # The hanging path holds sends until the deadline; don't wait for the graceful stop here.
            product.stop(timeout=15)
        receiver.stop()
    summary = latency_summary(values)
    log(f"isolation_host: healthy p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms "
        f"({missing} missing); hanging path: {held}; {deferrals} deferrals")
    return {"owed": sizes.isolation_host_owed, "rate": sizes.isolation_host_rate,
            "seconds": sizes.isolation_host_seconds, "deadline_s": float(deadline), "events": len(posted),
            "rejected": sum(p.status != 202 for p in posted), "missing": missing, **summary,
            "hanging_path": held, "deferrals": deferrals, "statuses": counts, "cpu": cpu}


def rows(bench: Bench, table: Table) -> None:
    iso = bench.results["isolation_host"]
    name = "isolation_host"
    table.add(name, f"healthy p50 ms ({iso['rate']:g}/s for {iso['seconds']:g} s; {iso['owed']} owed to a hanging "
              f"path on the same host:port; WEBHOOKS_TIMEOUT_SECONDS={iso['deadline_s']:g})", iso["p50_ms"])
    table.add(name, "healthy p99 ms", iso["p99_ms"], TARGET_P99_MS)
    table.add(name, "healthy max ms", iso["max_ms"])
    if iso["missing"]:
        table.add(name, f"healthy events not delivered within {ARRIVAL_WAIT_SECONDS} s", iso["missing"])
