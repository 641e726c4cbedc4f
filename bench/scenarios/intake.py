"""intake: how fast POST /api/v1/events accepts events, as ratios to a trivial Flask view under the same gunicorn.

10 webhooks subscribed to asset.create (on nginx), 8 client threads in a closed loop (bench/clients.py
`closed_loop`, kept-alive http.client connections), the Procfile's web command (2 workers x 4 threads), in one run:
- trivial: bench/trivial_app.py (parses the JSON, answers 202) started with the same gunicorn command line; measured
  first and last, and the ratios are taken to the mean of the two;
- single: one event per request, on PostgreSQL and on SQLite, no worker running: events/s, p50 and p99 ms;
- batch: POST /api/v1/events with a JSON array of 500 events, 4 client threads, both databases, no worker;
- fan-out: 20 batches (10,000 events, 100,000 messages) accepted with no worker, then the worker started alone:
  how fast its fan-out makes the messages the batches' requests no longer make (it starts sending them meanwhile);
- with worker: single events again with the Procfile's worker and scheduler delivering to nginx at the same time
  (a sustained stream: the worker has more to send than it can), as a ratio to the no-worker rate.
"""

import json
import time

import requests
from clients import asset_event, closed_loop
from harness import PIPELINE_WEBHOOKS, Bench, Product, Table, log, percentile, rounded
from servers import free_port, wait_for
from stack import ProcfileProcess, procfile_commands, procfile_environment

SINGLE_THREADS = 8
BATCH_THREADS = 4
BATCH_EVENTS = 500
BATCH_PATH = "/api/v1/events"  # a JSON array of events
TARGETS = {"postgresql": (">=", 0.6), "sqlite": (">=", 0.4)}
TARGET_P99_MS = ("<", 50)
TARGET_BATCH = (">=", 5000)
TARGET_WITH_WORKER = (">=", 0.5)
FAN_OUT_BATCHES = 20


def single_body() -> bytes:
    return json.dumps(asset_event()).encode()


def batch_body() -> bytes:
    return json.dumps([asset_event() for _ in range(BATCH_EVENTS)]).encode()


def summary(label: str, load, cpu: dict | None = None) -> dict:
    result = {"label": label, "events_per_s": round(load.events_per_s, 1), "requests": load.requests,
              "events": load.events, "failed": load.failed, "statuses": {str(k): v for k, v in load.statuses.items()},
              "p50_ms": rounded(percentile(load.round_trips_ms, 0.5)),
              "p99_ms": rounded(percentile(load.round_trips_ms, 0.99)), "first_error": load.first_error}
    if cpu is not None:
        result["cpu"] = cpu
    log(f"{label}: {result['events_per_s']:.0f} events/s ({load.requests} requests), p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms; {load.failed} failed {load.first_error or ''}")
    return result


def measure(bench: Bench, label: str, base_url: str, token: str, batch: bool = False, meter_of=None) -> dict:
    sizes = bench.sizes
    meter = bench.cpu_meter(extra=meter_of) if meter_of is not None else None
    if meter is not None:
        meter.start()
    if batch:
        load = closed_loop(base_url, BATCH_PATH, token, BATCH_THREADS, sizes.intake_seconds, batch_body,
                           events_per_body=BATCH_EVENTS)
    else:
        load = closed_loop(base_url, "/api/v1/events", token, SINGLE_THREADS, sizes.intake_seconds, single_body)
    return summary(label, load, meter.stop() if meter is not None else None)


def trivial(bench: Bench, label: str) -> dict:
    """The reference view under the Procfile's gunicorn command line."""
    port = free_port()
    command = procfile_commands()["web"].replace("0.0.0.0", "127.0.0.1").replace("wsgi:app", "bench.trivial_app:app")
    environment = procfile_environment(bench.database.url, bench.redis.url, bench.tls.ca_path,
                                       {"PORT": str(port), **bench.overrides})
    web = ProcfileProcess("trivial", command, environment, bench.log_dir, label).start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            if not web.alive():
                raise RuntimeError(f"the trivial app exited:\n{web.output()[-2000:]}")
            try:
                return requests.get(f"{base_url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout=60, interval=0.2, message="the trivial app to be ready")
        return measure(bench, label, base_url, "unused", meter_of={"web": ([web.pid], True)})
    finally:
        web.stop(timeout=10)


def prepare(bench: Bench, database) -> str:
    """Empty tables and Redis, 10 webhooks on nginx subscribed to asset.create, a token."""
    database.truncate()
    bench.redis.client().flushall()
    bench.make_webhooks([(bench.nginx.url(f"/intake/{n}", port_index=n), ("asset.create",))
                         for n in range(PIPELINE_WEBHOOKS)], database=database)
    return bench.make_token(database=database)


def fan_out_drain(bench: Bench, name: str, database) -> dict:
    """A bulk import accepted with no worker, then the worker alone: messages made per second by its fan-out."""
    token = prepare(bench, database)
    web = Product(bench, f"intake-{name}-import", bench.cores, worker=False, scheduler=False, database=database).start()
    try:
        for _ in range(FAN_OUT_BATCHES):
            response = requests.post(f"{web.base_url}{BATCH_PATH}", data=batch_body(), timeout=60,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            if response.status_code != 202:
                return {"first_error": f"{response.status_code} {response.text[:100]}"}
    finally:
        web.stop()
    try:
        owed_events = database.scalar("SELECT count(*) FROM events")
        if not database.scalar("SELECT count(*) FROM fan_outs"):
            return {"first_error": "no fan-out waiting: the requests made the messages"}
    except Exception as error:  # noqa: BLE001 - a version without fan-outs has no such table
        return {"first_error": f"no fan-outs table ({type(error).__name__})"}
    owed = owed_events * PIPELINE_WEBHOOKS
    worker = Product(bench, f"intake-{name}-fan-out", bench.cores, web=False, scheduler=False,
                     database=database).start()
    try:
        started, made_at_start = time.monotonic(), database.scalar("SELECT count(*) FROM messages")
        wait_for(lambda: not database.scalar("SELECT count(*) FROM fan_outs"), timeout=300, interval=0.05,
                 message=f"{name}: the worker to make {owed:,} messages")
        seconds = time.monotonic() - started
    finally:
        worker.stop()
    made = database.scalar("SELECT count(*) FROM messages")
    result = {"messages": made, "owed": owed, "seconds": round(seconds, 2),
              "messages_per_s": round((made - made_at_start) / seconds) if seconds else None}
    log(f"intake {name}, fan-out: {made:,} of {owed:,} messages made, {result['messages_per_s']:,} messages/s "
        f"({made - made_at_start:,} in {seconds:.2f} s after the worker was ready)")
    return result


def product_runs(bench: Bench, name: str, database) -> dict:
    results = {}
    token = prepare(bench, database)
    product = Product(bench, f"intake-{name}", bench.cores, worker=False, scheduler=False, database=database).start()
    try:
        components = product.cpu_pids()
        results["single"] = measure(bench, f"intake {name}, single", product.base_url, token,
                                    meter_of={n: (p, True) for n, p in components.items()})
        probe = requests.post(f"{product.base_url}{BATCH_PATH}", data=batch_body(), timeout=60,
                              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        if probe.status_code == 202:
            results["batch"] = measure(bench, f"intake {name}, batch of {BATCH_EVENTS}", product.base_url, token,
                                       batch=True, meter_of={n: (p, True) for n, p in components.items()})
        else:
            log(f"intake {name}: no batch intake ({probe.status_code} {probe.text[:100]})")
            results["batch"] = {"requests": 0, "first_error": f"{probe.status_code} {probe.text[:100]}"}
    finally:
        product.stop()
    results["fan_out"] = fan_out_drain(bench, name, database)
    token = prepare(bench, database)
    product = Product(bench, f"intake-{name}-worker", bench.cores, database=database).start()
    try:
        components = product.cpu_pids()
        results["with_worker"] = measure(bench, f"intake {name}, single, worker delivering", product.base_url, token,
                                         meter_of={n: (p, True) for n, p in components.items()})
        results["with_worker"]["sent_after"] = database.sent_count()
    finally:
        product.stop()
    return results


def run(bench: Bench) -> dict:
    results = {"first_trivial": trivial(bench, "intake trivial (first)")}
    results["postgresql"] = product_runs(bench, "postgresql", bench.database)
    results["sqlite"] = product_runs(bench, "sqlite", bench.sqlite_database)
    results["last_trivial"] = trivial(bench, "intake trivial (last)")
    rates = [results[key]["events_per_s"] for key in ("first_trivial", "last_trivial")]
    results["trivial_events_per_s"] = round(sum(rates) / len(rates), 1)
    return results


def cpu_ms_per_event(run: dict) -> dict:
    """CPU ms per event of the server side: web, the database's backends, Redis (the client's is left out)."""
    cpu, events = run.get("cpu"), run.get("events")
    if not cpu or not events:
        return {}
    return {name: 1000 * cpu["cpu_s"].get(name, 0.0) / events for name in ("web", "postgres", "redis")}


def ratio(value, reference):
    return round(value / reference, 2) if value is not None and reference else None


def rows(bench: Bench, table: Table) -> None:
    r = bench.results["intake"]
    reference = r["trivial_events_per_s"]
    table.add("intake", f"trivial Flask view, events/s (context; first {r['first_trivial']['events_per_s']:,.0f}, "
                        f"last {r['last_trivial']['events_per_s']:,.0f})", reference)
    table.add("intake", "trivial view p50 / p99 ms (context)",
              f"{r['first_trivial']['p50_ms']} / {r['first_trivial']['p99_ms']}")
    trivial_cpu = [cpu_ms_per_event(r[key]).get("web") for key in ("first_trivial", "last_trivial")]
    trivial_cpu = [value for value in trivial_cpu if value]
    trivial_web = sum(trivial_cpu) / len(trivial_cpu) if trivial_cpu else None
    table.add("intake", "trivial view: web CPU ms per event (context)", rounded(trivial_web, 2))
    for name in ("postgresql", "sqlite"):
        runs = r[name]
        single, batch, worker = runs["single"], runs["batch"], runs["with_worker"]
        table.add(f"intake, {name}", "single events/s (context)", single["events_per_s"])
        table.add(f"intake, {name}", "single / trivial", ratio(single["events_per_s"], reference), TARGETS[name])
        cpu = cpu_ms_per_event(single)
        if cpu:
            table.add(f"intake, {name}", "single: CPU ms per event, web / database / redis (context)",
                      f"{cpu['web']:.2f} / {cpu['postgres']:.2f} / {cpu['redis']:.2f}")
            table.add(f"intake, {name}", "single: trivial's web CPU / its web+database+redis CPU per event "
                                         "(steadier than events/s on a busy machine)",
                      ratio(trivial_web, sum(cpu.values())))
        table.add(f"intake, {name}", "single p50 ms", single["p50_ms"])
        table.add(f"intake, {name}", "single p99 ms", single["p99_ms"], TARGET_P99_MS)
        if single["failed"]:
            table.add(f"intake, {name}", "single: refused or failed requests", single["failed"])
        if batch["requests"]:
            table.add(f"intake, {name}", f"batch of {BATCH_EVENTS}: events/s", batch["events_per_s"], TARGET_BATCH)
            table.add(f"intake, {name}", "batch p50 / p99 ms per request", f"{batch['p50_ms']} / {batch['p99_ms']}")
        else:
            table.add(f"intake, {name}", f"batch of {BATCH_EVENTS}: events/s (not served: "
                                         f"{(batch['first_error'] or '')[:40]})", None, TARGET_BATCH)
        fan_out = runs.get("fan_out", {})
        if fan_out.get("messages_per_s"):
            table.add(f"intake, {name}", f"batch: messages made by the worker's fan-out per second (context; "
                                         f"{fan_out['messages']:,} of {fan_out['owed']:,})", fan_out["messages_per_s"])
        else:
            table.add(f"intake, {name}", f"batch: worker's fan-out (not measured: "
                                         f"{(fan_out.get('first_error') or '')[:40]})", None)
        table.add(f"intake, {name}", "single events/s with the worker delivering (context)", worker["events_per_s"])
        table.add(f"intake, {name}", "with worker / without", ratio(worker["events_per_s"], single["events_per_s"]),
                  TARGET_WITH_WORKER)
