"""isolation_host: two webhooks on the same https://127.0.0.1:PORT with different paths. One path hangs (reads the
request, never answers); it is owed a few hundred messages first. The other answers 204 at once and gets a steady
rate of events: its latency (arrival - the intake's 202). The product runs with a 3 s deadline
(WEBHOOKS_TIMEOUT_SECONDS) here, so the hanging sends end sooner than with the default 10 s."""

from harness import Bench, Table
from receivers import HANG_PREFIX, RecordingReceiver

from scenarios.isolation import measure_healthy_beside_stuck

ENVIRONMENT = {"WEBHOOKS_TIMEOUT_SECONDS": "3"}
TARGET_P99_MS = ("<", 1000)
ARRIVAL_WAIT_SECONDS = 60


def hanging_path_figures(receiver: RecordingReceiver):
    """Requests the hanging path holds and the timeouts recorded for its webhook."""
    def describe(bench: Bench, webhook_id: int) -> dict:
        timeouts = bench.database.scalar(
            "SELECT count(*) FROM attempts WHERE webhook_id = %s AND error_kind = 'timeout'", (webhook_id,))
        return {"requests_held": receiver.hung, "timeouts_recorded": timeouts}
    return describe


def run(bench: Bench) -> dict:
    sizes = bench.sizes
    deadline = bench.setting(ENVIRONMENT, "WEBHOOKS_TIMEOUT_SECONDS") or "10"
    bench.fresh_state()
    receiver = RecordingReceiver(bench.tls).start()
    try:
        figures = measure_healthy_beside_stuck(
            bench, "isolation_host", receiver.url(f"{HANG_PREFIX}never"), receiver, sizes.isolation_host_owed,
            sizes.isolation_host_rate, sizes.isolation_host_seconds, hanging_path_figures(receiver),
            environment=ENVIRONMENT, arrival_wait=ARRIVAL_WAIT_SECONDS)
    finally:
        receiver.stop()
    return {**figures, "deadline_s": float(deadline)}


def rows(bench: Bench, table: Table) -> None:
    iso = bench.results["isolation_host"]
    name = "isolation_host"
    table.add(name, f"healthy p50 ms ({iso['rate']:g}/s for {iso['seconds']:g} s; {iso['owed']} owed to a hanging "
              f"path on the same host:port; WEBHOOKS_TIMEOUT_SECONDS={iso['deadline_s']:g})", iso["p50_ms"])
    table.add(name, "healthy p99 ms", iso["p99_ms"], TARGET_P99_MS)
    table.add(name, "healthy max ms", iso["max_ms"])
    if iso["missing"]:
        table.add(name, f"healthy events not delivered within {ARRIVAL_WAIT_SECONDS} s", iso["missing"])
