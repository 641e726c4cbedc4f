"""Helpers the delivery scenarios share: waiting for Sent messages and arrivals, and latency figures."""

import time

from clients import EventClient, Posted, asset_event
from harness import percentile, rounded
from receivers import RecordingReceiver


def last_sent_epoch(bench) -> float | None:
    value = bench.database.scalar("SELECT extract(epoch FROM max(updated_at)) FROM messages WHERE status = 'sent'")
    return float(value) if value is not None else None


def wait_sent(bench, target: int, timeout: float, futures=None, interval: float = 0.05) -> int:
    """Poll the Sent count until it reaches target (and the futures are done); returns the last count."""
    deadline = time.monotonic() + timeout
    while True:
        sent = bench.database.sent_count()
        if sent >= target and (futures is None or all(future.done() for future in futures)):
            return sent
        if time.monotonic() > deadline:
            return sent
        time.sleep(interval)


def warm_up(bench, client: EventClient, events: int, deliveries_each: int, event_type: str = "asset.create"):
    """Post a few events and wait until they are Sent: connection pools, imports and caches are warm."""
    before = bench.database.sent_count()
    posted = client.post_all([asset_event(event_type) for _ in range(events)])
    bad = [p for p in posted if p.status != 202]
    if bad:
        raise RuntimeError(f"warm-up intake failed: {bad[0].status} {bad[0].error}")
    expected = before + sum(p.messages for p in posted)
    if deliveries_each and wait_sent(bench, expected, timeout=60) < expected:
        raise RuntimeError(f"warm-up deliveries did not complete: {bench.database.status_counts()}")


def latencies_ms(posted: list[Posted], arrivals: dict[str, float]) -> tuple[list[float], int]:
    values, missing = [], 0
    for p in posted:
        if p.status != 202:
            continue
        if p.event_id in arrivals:
            values.append((arrivals[p.event_id] - p.returned) * 1000)
        else:
            missing += 1
    return values, missing


def latency_summary(values: list[float]) -> dict:
    return {"count": len(values), "p50_ms": rounded(percentile(values, 0.5)),
            "p95_ms": rounded(percentile(values, 0.95)), "p99_ms": rounded(percentile(values, 0.99)),
            "max_ms": rounded(max(values) if values else None), "min_ms": rounded(min(values) if values else None)}


def wait_arrivals(receiver: RecordingReceiver, posted: list[Posted], timeout: float) -> None:
    wanted = {p.event_id for p in posted if p.status == 202}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not wanted <= receiver.arrival_times().keys():
        time.sleep(0.05)
