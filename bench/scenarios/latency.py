"""latency: 50 events/s to one webhook on a recording Python receiver: arrival - the intake's 202."""

from clients import EventClient, asset_event
from deliveries import latencies_ms, latency_summary, wait_arrivals, warm_up
from harness import CLIENT_THREADS, Bench, Product, Table, log, percentile, rounded
from receivers import RecordingReceiver

TARGET_P50_MS = ("<", 50)
TARGET_P99_MS = ("<", 250)


def run(bench: Bench) -> dict:
    sizes = bench.sizes
    bench.fresh_state()
    receiver = RecordingReceiver(bench.tls).start()
    product = client = None
    try:
        bench.make_webhooks([(receiver.url("/latency"), ("asset.create",))])
        token = bench.make_token()
        product = Product(bench, "latency", bench.cores).start()
        client = EventClient(product.base_url, token, CLIENT_THREADS)
        warm_up(bench, client, 20, 1)
        meter = bench.cpu_meter(product).start()
        posted = client.post_paced(sizes.latency_rate, sizes.latency_seconds, asset_event)
        wait_arrivals(receiver, posted, timeout=30)
        cpu = meter.stop()
        values, missing = latencies_ms(posted, receiver.arrival_times())
        counts = bench.database.status_counts()
    finally:
        if client is not None:
            client.close()
        if product is not None:
            product.stop()
        receiver.stop()
    summary = latency_summary(values)
    round_trips = [p.round_trip_ms for p in posted if p.status == 202]
    log(f"latency: {len(posted)} events at {sizes.latency_rate:g}/s: p50 {summary['p50_ms']} ms, "
        f"p95 {summary['p95_ms']} ms, p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms; {missing} missing")
    return {"rate": sizes.latency_rate, "seconds": sizes.latency_seconds, "events": len(posted),
            "rejected": sum(p.status != 202 for p in posted), "missing": missing, **summary,
            "intake_p50_ms": rounded(percentile(round_trips, 0.5)),
            "intake_p99_ms": rounded(percentile(round_trips, 0.99)), "duplicates": receiver.duplicates,
            "statuses": counts, "cpu": cpu}


def rows(bench: Bench, table: Table) -> None:
    lat = bench.results["latency"]
    table.add("latency", f"p50 ms ({lat['rate']:g}/s for {lat['seconds']:g} s)", lat["p50_ms"], TARGET_P50_MS)
    table.add("latency", "p95 ms", lat["p95_ms"])
    table.add("latency", "p99 ms", lat["p99_ms"], TARGET_P99_MS)
    if lat["missing"]:
        table.add("latency", "events never delivered", lat["missing"])
