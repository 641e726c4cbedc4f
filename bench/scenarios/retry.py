"""retry: one webhook whose endpoint answers 500 to the first delivery of each message (by the body's messageId)
and 204 to the next; the product runs with a short retry ladder (WEBHOOKS_RETRY_DELAYS=1,1,1,1,1) and gets a
steady rate of events. Lateness of a retry: its arrival - (the first delivery's arrival + the first delay).

The first arrival comes a little before the product's due time (which counts from the end of the first
attempt, once the 500 is read), so this lateness errs high by that round trip (a few ms on loopback). The
same figure from the product's own records (2nd attempt's start - 1st attempt's start and duration - delay)
is reported beside it for context.
"""

from clients import EventClient, asset_event
from deliveries import latency_summary, warm_up
from harness import CLIENT_THREADS, Bench, Product, Table, log, percentile, rounded
from receivers import FAIL_FIRST_PREFIX, RecordingReceiver
from servers import wait_for

ENVIRONMENT = {"WEBHOOKS_RETRY_DELAYS": "1,1,1,1,1"}
TARGET_P99_MS = ("<", 1000)
RETRY_WAIT_SECONDS = 60


def recorded_lateness_ms(bench: Bench, webhook_id: int, delay: float) -> list[float]:
    """Per message: 2nd attempt's start - (1st attempt's start + its duration + delay), from the attempts table."""
    rows = bench.database.connect().execute(
        "SELECT extract(epoch FROM a2.started_at - a1.started_at) * 1000 - a1.duration_ms "
        "FROM attempts a1 JOIN attempts a2 ON a2.message_id = a1.message_id AND a2.number = 2 "
        "WHERE a1.number = 1 AND a1.webhook_id = %s", (webhook_id,)).fetchall()
    return [float(value) - delay * 1000 for (value,) in rows]


def run(bench: Bench) -> dict:
    sizes = bench.sizes
    ladder = bench.setting(ENVIRONMENT, "WEBHOOKS_RETRY_DELAYS")
    delay = float(ladder.split(",")[0])
    bench.fresh_state()
    receiver = RecordingReceiver(bench.tls).start()
    product = client = None
    try:
        retried, _ = bench.make_webhooks([(receiver.url(f"{FAIL_FIRST_PREFIX}retry"), ("asset.create",)),
                                          (receiver.url("/warm"), ("folder.create",))])
        token = bench.make_token()
        product = Product(bench, "retry", bench.cores, environment=ENVIRONMENT).start()
        client = EventClient(product.base_url, token, CLIENT_THREADS)
        warm_up(bench, client, 10, 1, event_type="folder.create")  # same host:port, answered 204 at once
        meter = bench.cpu_meter(product).start()
        posted = client.post_paced(sizes.retry_rate, sizes.retry_seconds, asset_event)
        wanted = {p.event_id for p in posted if p.status == 202}

        def retried_all() -> bool:
            deliveries = receiver.deliveries_by_event()
            return all(len(deliveries.get(event_id, ())) >= 2 for event_id in wanted)

        try:
            wait_for(retried_all, timeout=RETRY_WAIT_SECONDS, interval=0.1, message="every retry")
        except AssertionError:
            log(f"retry: not every retry arrived within {RETRY_WAIT_SECONDS} s")
        cpu = meter.stop()
        deliveries = receiver.deliveries_by_event()
        counts = bench.database.status_counts()
        recorded = recorded_lateness_ms(bench, retried, delay)
    finally:
        if client is not None:
            client.close()
        if product is not None:
            product.stop()
        receiver.stop()
    last_posted = max((p.returned for p in posted if p.status == 202), default=0.0)
    values, after_last, missing = [], [], 0
    for event_id in wanted:
        times = deliveries.get(event_id, [])
        if len(times) < 2:
            missing += 1
            continue
        due = times[0] + delay
        values.append((times[1] - due) * 1000)
        if due > last_posted:
            after_last.append(values[-1])
    summary = latency_summary(values)
    log(f"retry: {len(values)} retries, lateness p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, max "
        f"{summary['max_ms']} ms ({missing} missing; {len(after_last)} came due after the last post; recorded p99 "
        f"{rounded(percentile(recorded, 0.99))} ms)")
    return {"ladder": ladder, "first_delay_s": delay, "rate": sizes.retry_rate, "seconds": sizes.retry_seconds,
            "events": len(posted), "rejected": len(posted) - len(wanted), "missing": missing, **summary,
            "extra_deliveries": sum(max(0, len(times) - 2) for times in deliveries.values()),
            "due_after_last_post": {"count": len(after_last), "p50_ms": rounded(percentile(after_last, 0.5)),
                                    "max_ms": rounded(max(after_last) if after_last else None)},
            "recorded": {"count": len(recorded), "p50_ms": rounded(percentile(recorded, 0.5)),
                         "p99_ms": rounded(percentile(recorded, 0.99)),
                         "max_ms": rounded(max(recorded) if recorded else None)},
            "statuses": counts, "cpu": cpu}


def rows(bench: Bench, table: Table) -> None:
    retry = bench.results["retry"]
    table.add("retry", f"lateness p50 ms (2nd arrival - 1st arrival - {retry['first_delay_s']:g} s; "
              f"WEBHOOKS_RETRY_DELAYS={retry['ladder']}; {retry['rate']:g}/s for {retry['seconds']:g} s)",
              retry["p50_ms"])
    table.add("retry", "lateness p99 ms", retry["p99_ms"], TARGET_P99_MS)
    table.add("retry", "lateness max ms", retry["max_ms"])
    table.add("retry", "lateness p99 ms from the recorded attempts (context)", retry["recorded"]["p99_ms"])
    after = retry["due_after_last_post"]
    if after["count"]:
        table.add("retry", f"lateness p50 ms of the {after['count']} retries due after the last event", after["p50_ms"])
    if retry["missing"]:
        table.add("retry", f"retries not arrived within {RETRY_WAIT_SECONDS} s", retry["missing"])
