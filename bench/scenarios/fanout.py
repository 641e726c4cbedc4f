"""fanout: one event to 1,000 enabled webhooks: the intake round trip, and the time until the last is Sent
(on one nginx endpoint, and spread over 10)."""

import statistics

from clients import EventClient, asset_event
from deliveries import wait_sent, warm_up
from harness import CLIENT_THREADS, PIPELINE_WEBHOOKS, Bench, Product, Table, log, rounded
from stack import QueueWatch

TARGET_INTAKE_MS = ("<", 150)
TARGET_ALL_SENT_S = ("<", 5)


def run_fanout(bench: Bench, label: str, endpoints: int, count: int) -> dict:
    sizes = bench.sizes
    bench.fresh_state()
    nginx = bench.nginx
    log(f"{label}: creating {sizes.fanout_webhooks} webhooks")
    bench.make_webhooks([(nginx.url(f"/fanout/{n}", port_index=n if endpoints > 1 else 0), ("asset.create",))
                         for n in range(sizes.fanout_webhooks)]
                        + [(nginx.url("/warm"), ("folder.create",))])
    token = bench.make_token()
    product = Product(bench, label, bench.cores).start()
    client = EventClient(product.base_url, token, CLIENT_THREADS)
    repeats = []
    watch = None
    try:
        warm_up(bench, client, 16, 1, event_type="folder.create")
        watch = QueueWatch(bench.redis.url)
        for _ in range(count):
            sent_before = bench.database.sent_count()
            meter = bench.cpu_meter(product).start()
            posted = client.post(asset_event())
            if posted.status != 202:
                raise RuntimeError(f"fanout intake failed: {posted.status} {posted.error}")
            reached = wait_sent(bench, sent_before + posted.messages, timeout=sizes.wait_seconds)
            cpu = meter.stop()
            last = bench.database.scalar(
                "SELECT extract(epoch FROM max(m.updated_at)) FROM messages m JOIN events e ON e.id = m.event_id "
                "WHERE e.event_uuid = %s AND m.status = 'sent'", (posted.event_id,))
            all_sent = float(last) - posted.started if last is not None else None
            complete = reached >= sent_before + posted.messages
            repeats.append({"intake_ms": round(posted.round_trip_ms, 1), "messages": posted.messages,
                            "sent": reached - sent_before, "complete": complete,
                            "all_sent_s": rounded(all_sent, 3), "cpu": cpu})
            log(f"{label}: intake {posted.round_trip_ms:.0f} ms for {posted.messages} messages; "
                f"{reached - sent_before} Sent after {all_sent or float('nan'):.2f} s")
        deferrals = watch.snapshot()["delayed"]
    finally:
        if watch is not None:
            watch.stop()
        client.close()
        product.stop()
    intake = [r["intake_ms"] for r in repeats]
    all_sent = [r["all_sent_s"] for r in repeats if r["all_sent_s"] is not None and r["complete"]]
    return {"label": label, "webhooks": sizes.fanout_webhooks, "endpoints": endpoints, "repeats": repeats,
            "intake_ms_median": statistics.median(intake), "intake_ms_max": max(intake),
            "all_sent_s_median": statistics.median(all_sent) if len(all_sent) == len(repeats) else None,
            "all_sent_s_max": max(all_sent) if len(all_sent) == len(repeats) else None,
            "deferrals": deferrals}


def run(bench: Bench) -> dict:
    return {"main": run_fanout(bench, "fanout", endpoints=1, count=bench.sizes.fanout_repeats),
            "endpoints_10": run_fanout(bench, "fanout-10endpoints", endpoints=PIPELINE_WEBHOOKS, count=1)}


def rows(bench: Bench, table: Table) -> None:
    for key, name in (("main", "fanout"), ("endpoints_10", "fanout, 10 endpoints")):
        f = bench.results["fanout"][key]
        table.add(name, f"intake round trip ms, median of {len(f['repeats'])}", f["intake_ms_median"],
                  TARGET_INTAKE_MS)
        table.add(name, f"all {f['webhooks']} Sent, s (median)", f["all_sent_s_median"], TARGET_ALL_SENT_S)
