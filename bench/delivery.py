"""Delivery benchmarks: the product's end-to-end delivery rate beside the physical limit, on this machine, in one run.

    python bench/delivery.py                         # every scenario (what `make bench` runs)
    python bench/delivery.py raw naive pipeline      # some scenarios
    python bench/delivery.py --quick                 # a smoke run: a few seconds per scenario
    python bench/delivery.py pipeline --env WEBHOOKS_MAX_SENDS_PER_ENDPOINT=16   # try a setting

Scenarios (every ratio is taken between figures measured in the same invocation):

- raw:       os.cpu_count() processes, each a requests.Session keep-alive loop POSTing one ~400-byte body to
             nginx (TLS, `return 204`) for a fixed time: the requests/s this machine can do at all.
- naive:     a bare Dramatiq actor POSTing with requests (a keep-alive Session per thread), writing nothing but
             one Redis INCR; cores processes x 8 threads; N messages timed until all are done.
- pipeline:  the product end to end: the Procfile's web, worker (cores processes x 8 threads) and scheduler;
             events posted to POST /api/v1/events by 8 client threads, each fanning out to 10 webhooks on
             nginx; timed until every message is Sent in the database. Also with 1 and 2 worker processes
             (scaling), and with the 10 webhooks on 10 distinct nginx ports (10 endpoints, so the
             per-endpoint send cap does not apply to all of them at once).
- fanout:    one event to 1,000 enabled webhooks: the intake round trip, and the time until the last is Sent.
- latency:   50 events/s to one webhook on a recording Python receiver: arrival - the intake's 202.
- isolation: an endpoint that accepts TCP and never answers is owed 500 messages; beside it a healthy webhook
             gets 20 events/s: its latency.
- memory:    10k then 100k messages in Scheduled retry (far future), worker and scheduler running: peak RSS.
- profile:   (when py-spy is installed) py-spy on two worker processes during a pipeline run: on-CPU and
             wall-clock (--idle) top functions. Runs apart from `pipeline`, whose figures it does not touch.

Needs: PostgreSQL at BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/bench_delivery; created
when missing, its schema `public` is DROPPED), redis-server (a private one on a free port is started; the shared
one is never touched), nginx (installed with apt-get when missing). Only 127.0.0.1 is contacted.
Results: a markdown table on stdout, and bench/results/delivery-<timestamp>.{json,md} plus the processes' logs.
"""

import argparse
import fcntl
import json
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(BENCH), str(ROOT), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import psutil  # noqa: E402
import requests  # noqa: E402
from clients import EventClient, Posted, asset_event, raw_client, sample_body  # noqa: E402
from receivers import NginxReceiver, RecordingReceiver, make_tls  # noqa: E402
from servers import SilentServer, free_port, wait_for  # noqa: E402
from stack import (  # noqa: E402
    BENCH_SECRET_KEY,
    BIN,
    DEFAULT_DATABASE_URL,
    BenchDatabase,
    ProcfileProcess,
    QueueWatch,
    RedisServer,
    instance_folder,
    postgres_pids,
    process_tree,
    procfile_commands,
    procfile_environment,
    tree_rss,
)

SCENARIOS = ("raw", "naive", "pipeline", "fanout", "latency", "isolation", "memory", "profile")
WORKER_THREADS = 8
CLIENT_THREADS = 8
PIPELINE_WEBHOOKS = 10
MB = 1024 * 1024

TARGETS = {
    "pipeline/raw": (">=", 0.30),
    "pipeline/naive": (">=", 0.8),
    "fanout intake ms": ("<", 150),
    "fanout all sent s": ("<", 5),
    "latency p50 ms": ("<", 50),
    "latency p99 ms": ("<", 250),
    "isolation p99 ms": ("<", 1000),
    "memory MB": ("<", 300),
}


@dataclass
class Sizes:
    raw_seconds: float
    naive_messages: int
    pipeline_events: int
    fanout_webhooks: int
    fanout_repeats: int
    latency_rate: float
    latency_seconds: float
    isolation_owed: int
    isolation_rate: float
    isolation_seconds: float
    memory_rows: tuple[int, int]
    memory_seconds: float
    profile_seconds: float
    wait_seconds: float  # longest wait for a backlog to drain


FULL = Sizes(raw_seconds=10, naive_messages=20_000, pipeline_events=1500, fanout_webhooks=1000, fanout_repeats=3,
             latency_rate=50, latency_seconds=30, isolation_owed=500, isolation_rate=20, isolation_seconds=20,
             memory_rows=(10_000, 100_000), memory_seconds=20, profile_seconds=10, wait_seconds=240)
QUICK = Sizes(raw_seconds=3, naive_messages=3_000, pipeline_events=60, fanout_webhooks=200, fanout_repeats=1,
              latency_rate=50, latency_seconds=5, isolation_owed=200, isolation_rate=20, isolation_seconds=5,
              memory_rows=(10_000, 100_000), memory_seconds=6, profile_seconds=3, wait_seconds=90)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(round(fraction * len(ordered) + 0.4999)))
    return ordered[min(rank, len(ordered)) - 1]


def rounded(value, digits: int = 1):
    return None if value is None else round(value, digits)


# --- the product's processes -------------------------------------------------------------------------------------


class Product:
    """The Procfile's web, worker and scheduler for one measurement, against the bench database and Redis."""

    def __init__(self, bench: "Bench", label: str, processes: int, web: bool = True, scheduler: bool = True):
        self.bench = bench
        self.label = label
        self.processes = processes
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        environment = procfile_environment(
            bench.database.url, bench.redis.url, bench.tls.ca_path,
            {"PORT": str(self.port), "WORKER_PROCESSES": str(processes), "WORKER_THREADS": str(WORKER_THREADS),
             **bench.overrides},
        )
        commands = procfile_commands()
        # The Procfile binds 0.0.0.0 for Heroku; the benchmark listens on loopback only.
        commands["web"] = commands["web"].replace("0.0.0.0", "127.0.0.1")
        names = ["worker"] + (["scheduler"] if scheduler else []) + (["web"] if web else [])
        self.parts = {name: ProcfileProcess(name, commands[name], environment, bench.log_dir, f"{label}-{name}")
                      for name in names}

    def start(self) -> "Product":
        for part in self.parts.values():
            part.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop(timeout=5)
            raise
        return self

    def _check_alive(self) -> None:
        for name, part in self.parts.items():
            if not part.alive():
                raise RuntimeError(f"{name} exited early:\n{part.output()[-3000:]}")

    def _wait_ready(self) -> None:
        def ready() -> bool:
            self._check_alive()
            if self.parts["worker"].output().count("Worker process is ready for action.") < self.processes:
                return False
            if "scheduler" in self.parts and "scheduler started" not in self.parts["scheduler"].output():
                return False
            if "web" in self.parts:
                try:
                    return requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
                except requests.RequestException:
                    return False
            return True

        wait_for(ready, timeout=90, interval=0.2, message=f"{self.label}: web, worker and scheduler to be ready")

    def worker_pids(self) -> list[int]:
        """The Dramatiq worker processes (children of the worker's main process)."""
        return [process.pid for process in process_tree(self.parts["worker"].pid)[1:]
                if "dramatiq" in " ".join(process.cmdline()) or "multiprocessing" in " ".join(process.cmdline())]

    def cpu_pids(self) -> dict[str, list[int]]:
        return {name: [part.pid] for name, part in self.parts.items()}

    def stop(self, timeout: float = 35) -> None:
        # Stop them side by side: each may wait for its sends in flight.
        threads = [threading.Thread(target=part.stop, kwargs={"timeout": timeout}) for part in self.parts.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.bench.collect_logs(self)


# --- CPU accounting ----------------------------------------------------------------------------------------------


def _per_pid_cpu(pids: list[int], recursive: bool = True) -> dict[int, tuple[float, float]]:
    """{pid: (user + system seconds, system seconds)} of these processes (and their children)."""
    result = {}
    for pid in pids:
        for process in process_tree(pid) if recursive else _single(pid):
            try:
                times = process.cpu_times()
                result[process.pid] = (times.user + times.system, times.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return result


def _single(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid)]
    except psutil.NoSuchProcess:
        return []


class CpuMeter:
    """CPU seconds used per component between start() and stop(), and the machine's busy share.

    A component is (pids or a function returning pids, whether to include their children); the pids are
    looked up again at each snapshot, so processes started in between (database backends) are counted.
    """

    def __init__(self, components: dict):
        self.components = components

    def _snapshot(self) -> dict:
        machine = psutil.cpu_times()
        # guest time is already part of user time on Linux
        total = sum(machine) - getattr(machine, "guest", 0.0) - getattr(machine, "guest_nice", 0.0)
        busy = total - machine.idle - getattr(machine, "iowait", 0.0)
        per = {}
        for name, (pids, recursive) in self.components.items():
            per[name] = _per_pid_cpu(pids() if callable(pids) else pids, recursive)
        own = psutil.Process().cpu_times()
        per["bench client"] = {os.getpid(): (own.user + own.system, own.system)}
        everyone = {}
        for process in psutil.process_iter(["name", "cpu_times", "ppid"]):
            times = process.info["cpu_times"]
            if times is not None:
                kernel = process.pid == 2 or process.info["ppid"] == 2  # kthreadd's children: writeback, softirq
                everyone[process.pid] = (process.info["name"] or "?", times.user + times.system, kernel)
        return {"time": time.monotonic(), "busy": busy, "per": per, "everyone": everyone}

    def start(self) -> "CpuMeter":
        self.first = self._snapshot()
        return self

    def stop(self) -> dict:
        last = self._snapshot()
        wall = last["time"] - self.first["time"]
        cores = os.cpu_count() or 1
        used, system = {}, {}
        for name, pids in last["per"].items():
            before = self.first["per"].get(name, {})
            used[name] = sum(max(0.0, now[0] - before.get(pid, (0.0, 0.0))[0]) for pid, now in pids.items())
            system[name] = sum(max(0.0, now[1] - before.get(pid, (0.0, 0.0))[1]) for pid, now in pids.items())
        busy = last["busy"] - self.first["busy"]
        measured = {pid for pids in last["per"].values() for pid in pids}
        others = Counter()
        kernel = 0.0
        for pid, (name, seconds, is_kernel) in last["everyone"].items():
            if pid in measured:
                continue
            before = self.first["everyone"].get(pid)
            spent = seconds - (before[1] if before and before[0] == name else 0.0)
            if is_kernel:
                kernel += spent
            else:
                others[f"{name}[{pid}]"] += spent
        # Kernel threads work for the measured processes too (disk writeback of the database's commits).
        used["kernel threads"] = kernel
        return {"wall_s": wall, "machine_busy_pct": 100 * busy / (wall * cores),
                "other_processes_cpu_s": [(name, round(value, 2)) for name, value in others.most_common(3)
                                          if value >= 0.05],
                # CPU that none of the measured processes used: another program competing for the machine.
                "other_busy_pct": round(100 * max(0.0, busy - sum(used.values())) / (wall * cores), 1),
                "cpu_s": {name: round(value, 3) for name, value in used.items()},
                "system_cpu_s": {name: round(value, 3) for name, value in system.items()}}


# --- the benchmark -----------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.cores = os.cpu_count() or 1
        self.overrides = dict(item.split("=", 1) for item in args.env)
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.results_dir = BENCH / "results"
        self.results_dir.mkdir(exist_ok=True)
        self.log_dir = self.results_dir / f"delivery-{self.stamp}-logs"
        self.log_dir.mkdir()
        self.tmp = tempfile.mkdtemp(prefix="bench-delivery-")
        self.tls = make_tls(self.tmp)
        self.results: dict[str, dict] = {}
        self.logs: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self._nginx: NginxReceiver | None = None
        self._redis: RedisServer | None = None
        self._database: BenchDatabase | None = None
        self._app = None

    # Shared resources, started on first use.

    @property
    def nginx(self) -> NginxReceiver:
        if self._nginx is None:
            self._nginx = NginxReceiver(self.tls, ports=PIPELINE_WEBHOOKS).start()
            log(f"nginx on 127.0.0.1 ports {self._nginx.ports[0]}..{self._nginx.ports[-1]} (TLS, return 204)")
        return self._nginx

    @property
    def redis(self) -> RedisServer:
        if self._redis is None:
            self._redis = RedisServer().start()
            log(f"private redis-server at {self._redis.url}")
        return self._redis

    @property
    def database(self) -> BenchDatabase:
        if self._database is None:
            database = BenchDatabase(os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
            environment = procfile_environment(database.url, self.redis.url, self.tls.ca_path, self.overrides)
            log(f"resetting {database.libpq_url} (schema public dropped) and migrating")
            database.reset(environment)
            self._database = database
        return self._database

    @property
    def app(self):
        if self._app is None:
            os.environ["SECRET_KEY"] = BENCH_SECRET_KEY
            os.environ["WEBHOOKS_INSTANCE_PATH"] = instance_folder()
            os.environ.pop("WEBHOOKS_ENCRYPTION_KEY", None)
            from webhooks_app import create_app
            from webhooks_app.config import normalize_database_url

            self._app = create_app({"SQLALCHEMY_DATABASE_URI": normalize_database_url(self.database.url),
                                    "REDIS_URL": self.redis.url,
                                    **{k: v for k, v in self.overrides.items() if k == "WEBHOOKS_ENCRYPTION_KEY"}})
            import logging

            logging.getLogger().setLevel(logging.WARNING)
        return self._app

    def fresh_state(self) -> None:
        """Empty tables and the private Redis between measurements (no product process is running)."""
        self.database.truncate()
        self.redis.client().flushall()

    def make_webhooks(self, urls_and_events: list[tuple[str, tuple[str, ...]]]) -> list[int]:
        from webhooks_app.extensions import db
        from webhooks_app.services.webhooks import WebhookFields, create_webhook

        with self.app.app_context():
            ids = []
            for index, (url, events) in enumerate(urls_and_events):
                webhook, _ = create_webhook(WebhookFields(f"bench {index}", url, events, True))
                ids.append(webhook.id)
            db.session.commit()
            db.session.remove()
        return ids

    def make_token(self) -> str:
        from webhooks_app.extensions import db
        from webhooks_app.services.api_tokens import create_api_token

        with self.app.app_context():
            _, token = create_api_token("bench")
            db.session.commit()
            db.session.remove()
        return token

    def cpu_meter(self, product: Product | None = None, extra: dict | None = None) -> CpuMeter:
        components = {}
        if product is not None:
            components.update({name: (pids, True) for name, pids in product.cpu_pids().items()})
        components.update(extra or {})
        if self._nginx is not None:
            components["nginx"] = (self._nginx.pids(), True)
        if self._redis is not None and self._redis.process is not None:
            components["redis"] = ([self._redis.process.pid], False)
        if self._database is not None:
            database = self._database.name
            components["postgres"] = (lambda: postgres_pids(database), False)
        return CpuMeter(components)

    def collect_logs(self, product: Product) -> None:
        for name, part in product.parts.items():
            self.logs[f"{product.label}-{name}"] = summarize_log(part.output())

    def close(self) -> None:
        for resource in (self._nginx, self._redis):
            if resource is not None:
                try:
                    resource.stop()
                except Exception as error:  # noqa: BLE001
                    log(f"stopping {resource}: {error}")
        if self._redis is not None:
            shutil.rmtree(self._redis.workdir, ignore_errors=True)
        if self._database is not None:
            self._database.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


LOG_TIMESTAMP = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T][\d:,.]+\]?\s*(\[\d+\]\s*)?")
ACCESS_STATUS = re.compile(r'"[A-Z]+ (\S+) HTTP/[\d.]+" (\d{3}) ')


def summarize_log(text: str) -> dict:
    """Errors, warnings and tracebacks of one process log (distinct messages, with counts), and HTTP statuses."""
    lines = text.splitlines()
    kinds = Counter()
    distinct: Counter = Counter()
    statuses: Counter = Counter()
    for line in lines:
        access = ACCESS_STATUS.search(line)
        if access:
            statuses[f"{access.group(1).split('?')[0]} {access.group(2)}"] += 1
            continue
        for kind in ("Traceback", "CRITICAL", "ERROR", "WARNING"):
            if kind in line:
                kinds[kind] += 1
                normalized = re.sub(r"\d+", "N", LOG_TIMESTAMP.sub("", line).strip())
                distinct[normalized[:200]] += 1
                break
    return {"lines": len(lines), "counts": dict(kinds), "top": distinct.most_common(8), "http": dict(statuses)}


# --- scenarios ---------------------------------------------------------------------------------------------------


def scenario_raw(bench: Bench) -> dict:
    sizes = bench.sizes
    url = bench.nginx.url("/raw")
    body = sample_body()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start_at = time.time() + 3.0
    clients = [context.Process(target=raw_client, args=(url, bench.tls.ca_path, body, start_at, sizes.raw_seconds,
                                                       queue), daemon=True) for _ in range(bench.cores)]
    for client in clients:
        client.start()
    try:
        time.sleep(max(0.0, start_at - time.time()))
        meter = bench.cpu_meter().start()
        results = [queue.get(timeout=sizes.raw_seconds + 60) for _ in clients]
        cpu = meter.stop()
        # The clients report their own CPU: they may have exited before the meter's last look.
        clients_cpu = sum(result["cpu_s"] for result in results)
        cpu["cpu_s"]["raw clients"] = round(clients_cpu, 3)
        cores = os.cpu_count() or 1
        cpu["other_busy_pct"] = round(max(0.0, cpu["other_busy_pct"] - 100 * clients_cpu / (cpu["wall_s"] * cores)), 1)
    finally:
        for client in clients:
            client.join(timeout=10)
            if client.is_alive():
                client.terminate()
    done = sum(result["done"] for result in results)
    failed = sum(result["failed"] for result in results)
    rate = done / sizes.raw_seconds
    log(f"raw: {done} requests in {sizes.raw_seconds:g} s by {len(clients)} processes: {rate:.0f}/s ({failed} failed)")
    return {"processes": len(clients), "seconds": sizes.raw_seconds, "requests": done, "failed": failed,
            "body_bytes": len(body), "requests_per_s": round(rate, 1), "cpu": cpu,
            "cpu_ms_per_request": cpu_per_unit(cpu, done)}


def cpu_per_unit(cpu: dict, units: int) -> dict:
    if not units:
        return {}
    return {name: round(1000 * seconds / units, 3) for name, seconds in cpu["cpu_s"].items()}


def scenario_naive(bench: Bench) -> dict:
    sizes = bench.sizes
    redis_server = bench.redis
    client = redis_server.client()
    client.flushall()
    os.environ["BENCH_NAIVE_REDIS_URL"] = redis_server.url
    environment = {**os.environ, "PYTHONPATH": str(BENCH), "BENCH_NAIVE_REDIS_URL": redis_server.url,
                   "BENCH_NAIVE_TARGET_URL": bench.nginx.url("/naive"), "BENCH_NAIVE_CA_BUNDLE": bench.tls.ca_path,
                   "PYTHONUNBUFFERED": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = (f"{BIN / 'dramatiq'} naive_worker --processes {bench.cores} --threads {WORKER_THREADS} "
               "--worker-shutdown-timeout 5000")
    import naive_worker

    # Fill the queue first, so the bench's own enqueueing takes no CPU from the measured window; the first
    # `warmup` completions absorb the worker's start, the clock runs from then until the last completion.
    body = sample_body().decode()
    warmup = 200
    fill_started = time.time()
    for _ in range(warmup + sizes.naive_messages):
        naive_worker.post.send(body)
    enqueue_seconds = time.time() - fill_started

    def finished() -> int:
        return int(client.get(naive_worker.DONE_KEY) or 0) + int(client.get(naive_worker.FAILED_KEY) or 0)

    worker = ProcfileProcess("naive-worker", command, environment, bench.log_dir).start()
    try:
        wait_for(lambda: finished() >= warmup or not worker.alive(), timeout=60, interval=0.002,
                   message="the naive warm-up")
        meter = bench.cpu_meter(extra={"worker": ([worker.pid], True)}).start()
        started = time.time()
        done_at_start = finished()
        target = warmup + sizes.naive_messages
        wait_for(lambda: finished() >= target or not worker.alive(), timeout=sizes.wait_seconds, interval=0.01,
                   message="the naive messages")
        ended = time.time()
        cpu = meter.stop()
        measured = finished() - done_at_start
        failed = int(client.get(naive_worker.FAILED_KEY) or 0)
    finally:
        worker.stop(timeout=20, group=False)
        bench.logs["naive-worker"] = summarize_log(worker.output())
    rate = measured / (ended - started)
    log(f"naive: {measured} messages in {ended - started:.2f} s: {rate:.0f}/s "
        f"(queue filled beforehand in {enqueue_seconds:.2f} s; {failed} failed)")
    return {"processes": bench.cores, "threads": WORKER_THREADS, "messages": measured,
            "seconds": round(ended - started, 3), "enqueue_seconds": round(enqueue_seconds, 3), "failed": failed,
            "deliveries_per_s": round(rate, 1), "cpu": cpu, "cpu_ms_per_delivery": cpu_per_unit(cpu, measured)}


def last_sent_epoch(bench: Bench) -> float | None:
    value = bench.database.scalar("SELECT extract(epoch FROM max(updated_at)) FROM messages WHERE status = 'sent'")
    return float(value) if value is not None else None


def wait_sent(bench: Bench, target: int, timeout: float, futures=None, interval: float = 0.05) -> int:
    """Poll the Sent count until it reaches target (and the futures are done); returns the last count."""
    deadline = time.monotonic() + timeout
    while True:
        sent = bench.database.sent_count()
        if sent >= target and (futures is None or all(future.done() for future in futures)):
            return sent
        if time.monotonic() > deadline:
            return sent
        time.sleep(interval)


def warm_up(bench: Bench, client: EventClient, events: int, deliveries_each: int, event_type: str = "asset.create"):
    """Post a few events and wait until they are Sent: connection pools, imports and caches are warm."""
    before = bench.database.sent_count()
    posted = client.post_all([asset_event(event_type) for _ in range(events)])
    bad = [p for p in posted if p.status != 202]
    if bad:
        raise RuntimeError(f"warm-up intake failed: {bad[0].status} {bad[0].error}")
    expected = before + sum(p.messages for p in posted)
    if deliveries_each and wait_sent(bench, expected, timeout=60) < expected:
        raise RuntimeError(f"warm-up deliveries did not complete: {bench.database.status_counts()}")


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


def scenario_pipeline(bench: Bench) -> dict:
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


def scenario_fanout(bench: Bench) -> dict:
    return {"main": run_fanout(bench, "fanout", endpoints=1, count=bench.sizes.fanout_repeats),
            "endpoints_10": run_fanout(bench, "fanout-10endpoints", endpoints=PIPELINE_WEBHOOKS, count=1)}


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


def scenario_latency(bench: Bench) -> dict:
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


def scenario_isolation(bench: Bench) -> dict:
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


def insert_scheduled_retries(bench: Bench, webhook_id: int, event_id: int, rows: int) -> float:
    started = time.monotonic()
    bench.database.execute(
        """
        INSERT INTO messages (message_uuid, webhook_id, event_id, event_type, is_test, status, attempts_made,
                              next_attempt_at, claimed_until, enqueued_at, failure_reason, created_at, updated_at)
        SELECT gen_random_uuid()::text, %(webhook)s, %(event)s, 'asset.create', false, 'scheduled_retry', 1,
               (now() AT TIME ZONE 'utc') + interval '30 days', NULL, NULL, NULL,
               (now() AT TIME ZONE 'utc') - interval '1 minute', (now() AT TIME ZONE 'utc') - interval '1 minute'
        FROM generate_series(1, %(rows)s)
        """,
        {"webhook": webhook_id, "event": event_id, "rows": rows},
    )
    bench.database.execute("ANALYZE messages")
    return time.monotonic() - started


def scenario_memory(bench: Bench) -> dict:
    sizes = bench.sizes
    bench.fresh_state()
    (webhook_id,) = bench.make_webhooks([(bench.nginx.url("/memory"), ("asset.create",))])
    event_id = bench.database.scalar(
        "INSERT INTO events (event_uuid, event_type, payload, created_at) VALUES (gen_random_uuid()::text, "
        "'asset.create', %s, now() AT TIME ZONE 'utc') RETURNING id",
        (json.dumps({"assetId": 1, "systemEventType": "ASSET_CREATE", "eventId": "x", "eventTime": 0, "userId": 1}),))
    steps = []
    present = 0
    for rows in sizes.memory_rows:
        seconds = insert_scheduled_retries(bench, webhook_id, event_id, rows - present)
        present = rows
        log(f"memory: {rows} messages in Scheduled retry ({seconds:.1f} s to insert); sampling for "
            f"{sizes.memory_seconds:g} s")
        bench.redis.client().flushall()
        product = Product(bench, f"memory-{rows}", bench.cores, web=False).start()
        peaks: dict[int, tuple[str, int]] = {}
        scheduler_peak = 0
        try:
            deadline = time.monotonic() + sizes.memory_seconds
            while time.monotonic() < deadline:
                for pid, (what, rss) in tree_rss(product.parts["worker"].pid).items():
                    if rss > peaks.get(pid, ("", 0))[1]:
                        peaks[pid] = (what, rss)
                for _, rss in tree_rss(product.parts["scheduler"].pid).values():
                    scheduler_peak = max(scheduler_peak, rss)
                time.sleep(0.25)
        finally:
            product.stop()
        worker_main = product.parts["worker"].pid
        children = [rss for pid, (_, rss) in peaks.items() if pid != worker_main]
        steps.append({
            "rows": rows,
            "worker_process_peak_mb": round(max(children or [0]) / MB, 1),
            "worker_main_peak_mb": round(peaks.get(worker_main, ("", 0))[1] / MB, 1),
            "worker_total_peak_mb": round(sum(rss for _, rss in peaks.values()) / MB, 1),
            "scheduler_peak_mb": round(scheduler_peak / MB, 1),
            "processes": {str(pid): {"cmd": what, "peak_mb": round(rss / MB, 1)} for pid, (what, rss) in peaks.items()},
            "statuses": bench.database.status_counts(),
        })
        log(f"memory: at {rows} rows: worker processes peak {steps[-1]['worker_process_peak_mb']} MB, "
            f"worker main {steps[-1]['worker_main_peak_mb']} MB, scheduler {steps[-1]['scheduler_peak_mb']} MB")
    first, last = steps[0], steps[-1]
    growth = (last["worker_process_peak_mb"] / first["worker_process_peak_mb"]
              if first["worker_process_peak_mb"] else None)
    return {"steps": steps, "growth_ratio": rounded(growth, 2), "seconds": sizes.memory_seconds}


# --- profile -----------------------------------------------------------------------------------------------------


def pyspy_binary() -> str | None:
    candidate = BIN / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def analyze_collapsed(path: Path, within: str | None = None, top: int = 25) -> dict:
    """Top functions of a py-spy raw (collapsed) profile: self and inclusive shares of samples."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    children: Counter = Counter()  # what `within` spends its time in: the frame right below it
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [shorten_frame(frame) for frame in stack.split(";")]
        if within and not any(within in frame for frame in frames):
            continue
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        if within:
            index = next(i for i, frame in enumerate(frames) if within in frame)
            children[frames[index + 1] if index + 1 < len(frames) else "(itself)"] += samples
        for frame in set(frames):
            inclusive[frame] += samples

    def share(counter: Counter) -> list[tuple[str, float]]:
        if not total:
            return []
        return [(frame, round(100 * samples / total, 1)) for frame, samples in counter.most_common(top)]

    return {"samples": total, "self_pct": share(own), "inclusive_pct": share(inclusive),
            "children_pct": share(children)}


def shorten_frame(frame: str) -> str:
    frame = re.sub(r"\(/[^)]*/site-packages/", "(", frame)
    frame = frame.replace(f"({ROOT}/", "(")
    return re.sub(r"\(/[^)]*/lib/python3\.\d+/", "(stdlib/", frame)


def scenario_profile(bench: Bench) -> dict:
    pyspy = pyspy_binary()
    if pyspy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    sizes = bench.sizes
    bench.fresh_state()
    nginx = bench.nginx
    bench.make_webhooks([(nginx.url(f"/hook/{n}"), ("asset.create",)) for n in range(PIPELINE_WEBHOOKS)])
    token = bench.make_token()
    product = Product(bench, "profile", bench.cores).start()
    client = EventClient(product.base_url, token, CLIENT_THREADS)
    stop = threading.Event()
    outputs = {}

    def keep_posting():
        while not stop.is_set():
            client.post_all([asset_event() for _ in range(CLIENT_THREADS * 2)])

    poster = threading.Thread(target=keep_posting, daemon=True)
    try:
        warm_up(bench, client, 10, PIPELINE_WEBHOOKS)
        poster.start()
        time.sleep(2)
        workers = product.worker_pids()
        if not workers:
            raise RuntimeError("no worker child process found to profile")
        other = workers[1] if len(workers) > 1 else workers[0]
        # Two samplers at a time, one per worker process (py-spy pauses the process it samples), then one more.
        phases = [[("oncpu", workers[0], []), ("wall", other, ["--idle"])], [("gil", workers[0], ["--gil"])]]
        for phase in phases:
            spies = []
            for name, pid, extra in phase:
                output = bench.results_dir / f"delivery-{bench.stamp}-profile-{name}.txt"
                outputs[name] = {"pid": pid, "file": str(output.relative_to(ROOT)), "options": extra}
                spies.append(subprocess.Popen(
                    [pyspy, "record", "--pid", str(pid), "--duration", str(int(sizes.profile_seconds)),
                     "--rate", "100", "--format", "raw", "--nolineno", "--output", str(output), *extra],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                ))
            for (name, _, _), spy in zip(phase, spies, strict=True):
                try:
                    _, errors = spy.communicate(timeout=sizes.profile_seconds + 60)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    _, errors = spy.communicate(timeout=10)
                    errors = f"py-spy did not finish in time; {errors}"
                if spy.returncode != 0:
                    outputs[name]["error"] = errors[-500:]
    finally:
        stop.set()
        if poster.is_alive():
            poster.join(timeout=30)
        client.close()
        product.stop()
    for info in outputs.values():
        path = ROOT / info["file"]
        if "error" in info or not path.exists():
            continue
        info["all"] = analyze_collapsed(path)
        info["in_deliver"] = analyze_collapsed(path, within="deliver_backlog")
    summary = [f"{name}: pid {info['pid']} ({info.get('all', {}).get('samples', 0)} samples)"
               for name, info in outputs.items()]
    log(f"profile: {', '.join(summary)}")
    return outputs


# --- report ------------------------------------------------------------------------------------------------------


def verdict(key: str, value) -> str:
    if value is None:
        return "n/a"
    operator, limit = TARGETS[key]
    met = value >= limit if operator == ">=" else value < limit
    return "met" if met else "MISSED"


def target_text(key: str) -> str:
    operator, limit = TARGETS[key]
    return f"{'≥' if operator == '>=' else '<'} {limit:g}"


def build_rows(bench: Bench) -> list[tuple[str, str, str, str, str]]:
    r = bench.results
    rows = []

    def add(scenario, figure, value, key=None, unit=""):
        shown = "n/a" if value is None else (f"{value:,.2f}" if isinstance(value, float) and value < 10
                                             else f"{value:,.0f}" if isinstance(value, float) else f"{value}")
        rows.append((scenario, figure, shown + unit if value is not None else shown,
                     target_text(key) if key else "—", verdict(key, value) if key else ""))

    raw = r.get("raw", {}).get("requests_per_s")
    naive = r.get("naive", {}).get("deliveries_per_s")
    if "raw" in r:
        add("raw", f"requests/s, {r['raw']['processes']} processes (context)", raw)
    if "naive" in r:
        add("naive", f"deliveries/s, {r['naive']['processes']}x{WORKER_THREADS} (context)", naive)
        add("naive", "naive/raw", round(naive / raw, 2) if raw else None)
    if "pipeline" in r:
        p = r["pipeline"]
        main = p["main"]["deliveries_per_s"]
        add("pipeline", f"deliveries/s, {bench.cores}x{WORKER_THREADS}, 10 webhooks on 1 endpoint (context)", main)
        add("pipeline", "pipeline/raw", round(main / raw, 3) if raw else None, "pipeline/raw")
        add("pipeline", "pipeline/naive", round(main / naive, 3) if naive else None, "pipeline/naive")
        add("pipeline", "scaling: 2 worker processes / 1", p["scaling_2_over_1"])
        add("pipeline", "deliveries/s with 1 worker process (context)", p["processes_1"]["deliveries_per_s"])
        e10 = p["endpoints_10"]["deliveries_per_s"]
        add("pipeline", "10 webhooks on 10 endpoints: deliveries/s (context)", e10)
        add("pipeline", "10 endpoints: pipeline/raw", round(e10 / raw, 3) if raw else None, "pipeline/raw")
        add("pipeline", "10 endpoints / 1 endpoint", round(e10 / main, 2) if main else None)
        add("pipeline", "deferrals per delivery (1 endpoint)",
            round(p["main"]["deferrals"] / max(1, p["main"]["delivered"]), 2))
    if "fanout" in r:
        for key, name in (("main", "fanout"), ("endpoints_10", "fanout, 10 endpoints")):
            f = r["fanout"][key]
            add(name, f"intake round trip ms, median of {len(f['repeats'])}", f["intake_ms_median"],
                "fanout intake ms")
            add(name, f"all {f['webhooks']} Sent, s (median)", f["all_sent_s_median"], "fanout all sent s")
    if "latency" in r:
        lat = r["latency"]
        add("latency", f"p50 ms ({lat['rate']:g}/s for {lat['seconds']:g} s)", lat["p50_ms"], "latency p50 ms")
        add("latency", "p95 ms", lat["p95_ms"])
        add("latency", "p99 ms", lat["p99_ms"], "latency p99 ms")
        if lat["missing"]:
            add("latency", "events never delivered", lat["missing"])
    if "isolation" in r:
        iso = r["isolation"]
        add("isolation", f"healthy p50 ms ({iso['owed']} owed to a silent endpoint)", iso["p50_ms"])
        add("isolation", "healthy p99 ms", iso["p99_ms"], "isolation p99 ms")
        if iso["missing"]:
            add("isolation", "healthy events never delivered", iso["missing"])
    if "memory" in r:
        for step in r["memory"]["steps"]:
            add("memory", f"worker process peak RSS MB at {step['rows']:,} rows", step["worker_process_peak_mb"],
                "memory MB")
            add("memory", f"scheduler peak RSS MB at {step['rows']:,} rows", step["scheduler_peak_mb"], "memory MB")
        add("memory", "worker peak growth (last/first)", r["memory"]["growth_ratio"])
    for label, cpu in measured_cpu(bench):
        if cpu.get("other_busy_pct", 0) > 15:
            who = ", ".join(f"{name} {seconds:g} s" for name, seconds in cpu.get("other_processes_cpu_s", []))
            rows.append((label, f"WARNING: other programs used the CPU ({who or 'unknown'})",
                         f"{cpu['other_busy_pct']:.0f}% of the machine", "—", "NOISY"))
    for name, error in bench.errors.items():
        last = [line for line in error.splitlines() if line.strip()][-1:] or ["error"]
        rows.append((name, "scenario failed", last[0].strip()[:100].replace("|", "/"), "—", "FAILED"))
    return rows


def measured_cpu(bench: Bench) -> list[tuple[str, dict]]:
    """(label, cpu) of every measurement window that recorded its CPU use."""
    found, seen = [], set()

    def visit(label: str, value) -> None:
        if isinstance(value, list):
            for index, inner in enumerate(value):
                visit(f"{label}#{index + 1}", inner)
        if not isinstance(value, dict) or id(value) in seen:
            return
        seen.add(id(value))
        if "other_busy_pct" in value and "cpu_s" in value:
            found.append((label, value))
            return
        own = value.get("label", label)
        for key, inner in value.items():
            visit(own if key == "cpu" else f"{own}/{key}", inner)

    for name, result in bench.results.items():
        visit(name, result)
    return found


def markdown_table(rows) -> str:
    lines = ["| Scenario | Figure | Value | Target | Result |", "|---|---|---:|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def cpu_table(bench: Bench) -> str:
    """CPU milliseconds per delivery per component, for the throughput runs."""
    runs = []
    if "raw" in bench.results:
        runs.append(("raw", bench.results["raw"]["cpu_ms_per_request"], bench.results["raw"]["cpu"]))
    if "naive" in bench.results:
        runs.append(("naive", bench.results["naive"]["cpu_ms_per_delivery"], bench.results["naive"]["cpu"]))
    seen = set()
    for run in bench.results.get("pipeline", {}).values():
        if isinstance(run, dict) and id(run) not in seen:
            seen.add(id(run))
            runs.append((run["label"], run["cpu_ms_per_delivery"], run["cpu"]))
    if not runs:
        return ""
    components = sorted({name for _, per, _ in runs for name in per})
    lines = ["| Run | machine busy % | of it, other programs % | " + " | ".join(components) + " | total |",
             "|---|---:|---:|" + "---:|" * (len(components) + 1)]
    for label, per, cpu in runs:
        total = sum(per.values())
        lines.append(f"| {label} | {cpu['machine_busy_pct']:.0f} | {cpu.get('other_busy_pct', 0):.0f} | "
                     + " | ".join(f"{per.get(name, 0):.2f}" for name in components) + f" | {total:.2f} |")
    return ("CPU ms per delivery (per request for raw), by process. 'kernel threads': loopback networking "
            "(softirq) and disk writeback of the database's commits; 'other programs': machine CPU that none of "
            "these used (another program competed, so that run's figures are low):\n\n" + "\n".join(lines))


def profile_text(bench: Bench) -> str:
    profile = bench.results.get("profile")
    if not profile or "skipped" in profile:
        return f"Profile: {profile.get('skipped') if profile else 'not run'}"
    parts = []
    for name, info in profile.items():
        if "all" not in info:
            parts.append(f"Profile {name}: {info.get('error', 'no output')}")
            continue
        title = {"oncpu": "on-CPU threads", "wall": "wall clock, all threads (--idle)",
                 "gil": "GIL holder (--gil)"}.get(name, name)
        parts.append(f"Profile {title}, worker pid {info['pid']}, {info['all']['samples']} samples ({info['file']})")
        scope = info["in_deliver"] if name == "wall" else info["all"]
        if name == "wall":
            parts.append(f"  within deliver_backlog ({scope['samples']} samples), by the function it called:")
            parts += [f"    {pct:5.1f}%  {frame}" for frame, pct in scope.get("children_pct", [])[:12]]
        parts.append("  top inclusive:")
        parts += [f"    {pct:5.1f}%  {frame}" for frame, pct in scope["inclusive_pct"][:20]]
        parts.append("  top self:")
        parts += [f"    {pct:5.1f}%  {frame}" for frame, pct in scope["self_pct"][:15]]
    return "\n".join(parts)


def logs_text(bench: Bench) -> str:
    lines = []
    for name, summary in bench.logs.items():
        flagged = {k: v for k, v in summary["counts"].items() if v}
        http = {k: v for k, v in summary["http"].items() if not re.search(r" 2\d\d$", k)}
        if not flagged and not http:
            continue
        lines.append(f"- {name}: {flagged or ''} {('non-2xx ' + str(http)) if http else ''}".rstrip())
        for message, count in summary["top"][:5]:
            lines.append(f"    {count}x {message}")
    return "Worker, web and scheduler logs (errors and warnings):\n" + ("\n".join(lines) if lines else "  none")


LOCK_PATH = Path(tempfile.gettempdir()) / "webhooks-bench-delivery.lock"


def take_run_lock(wait_seconds: float = 1800):
    """One delivery benchmark at a time on this machine: they share the bench database and the CPU."""
    handle = LOCK_PATH.open("a+")
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if not told:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                log(f"another delivery benchmark is running ({holder}); waiting for it (at most {wait_seconds:g} s)")
                told = True
            if time.monotonic() > deadline:
                raise SystemExit("gave up waiting for the other delivery benchmark") from None
            time.sleep(1)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, started {time.strftime('%H:%M:%S')}\n")
    handle.flush()
    return handle


def environment_info(bench: Bench) -> dict:
    def version(argv):
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            return (result.stdout or result.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    nproc = version(["nproc"])
    head = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    try:
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=False).stdout.split("\n")
        changed = sorted(line[3:] for line in status if line.strip())
    except (OSError, subprocess.TimeoutExpired):
        changed = []
    before = psutil.cpu_times()
    time.sleep(2)
    after = psutil.cpu_times()
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
    background = 100 * (1 - idle / max(1e-9, sum(after) - sum(before)))
    return {"nproc": nproc, "os_cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "nginx": version(["nginx", "-v"]),
            "redis_server": version(["redis-server", "--version"]),
            "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1), "overrides": bench.overrides,
            "background_busy_pct": round(background, 1), "git_head": head, "git_uncommitted": changed,
            "quick": bench.args.quick, "sizes": bench.sizes.__dict__}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (a few seconds per scenario)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment variable for the product's processes (repeatable)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed, too")
    args = parser.parse_args(argv)
    scenarios = [name for name in SCENARIOS if name in args.scenarios] if args.scenarios else list(SCENARIOS)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    for item in args.env:
        if "=" not in item:
            parser.error(f"--env wants NAME=VALUE, not {item!r}")

    lock = take_run_lock()
    bench = Bench(args)
    info = environment_info(bench)
    print(f"nproc: {info['nproc']} (os.cpu_count() = {info['os_cpu_count']}); python {info['python']}; "
          f"{info['nginx']}; {info['redis_server']}; {'quick' if args.quick else 'full'} run; "
          f"machine busy before start: {info['background_busy_pct']:.0f}%", flush=True)
    if info["background_busy_pct"] > 15:
        print("WARNING: something else is using the CPU; the figures will be noisy", flush=True)
    log(f"scenarios: {' '.join(scenarios)}; logs in {bench.log_dir.relative_to(ROOT)}")
    functions = {name: globals()[f"scenario_{name}"] for name in SCENARIOS}
    try:
        for name in scenarios:
            log(f"--- {name}")
            started = time.monotonic()
            try:
                bench.results[name] = functions[name](bench)
            except Exception:  # noqa: BLE001  (one failed scenario must not hide the others)
                bench.errors[name] = traceback.format_exc()
                log(f"{name} FAILED:\n{bench.errors[name]}")
            log(f"{name}: {time.monotonic() - started:.0f} s")
    except KeyboardInterrupt:
        log("interrupted")
        bench.errors["interrupted"] = "KeyboardInterrupt"
    finally:
        bench.close()

    rows = build_rows(bench)
    report = "\n\n".join(filter(None, [
        f"## Delivery benchmark ({'quick' if args.quick else 'full'}), {bench.stamp}, nproc {info['nproc']}, "
        f"commit {info['git_head']}" + (f" + uncommitted changes to {', '.join(info['git_uncommitted'])}"
                                        if info["git_uncommitted"] else ""),
        markdown_table(rows), cpu_table(bench), logs_text(bench), profile_text(bench) if "profile" in scenarios else "",
    ]))
    print("\n" + report, flush=True)
    document = {"timestamp": bench.stamp, "environment": info, "scenarios": scenarios, "results": bench.results,
                "table": [dict(zip(("scenario", "figure", "value", "target", "result"), row, strict=True))
                          for row in rows],
                "errors": bench.errors, "logs": bench.logs}
    json_path = bench.results_dir / f"delivery-{bench.stamp}.json"
    json_path.write_text(json.dumps(document, indent=2, default=str))
    (bench.results_dir / f"delivery-{bench.stamp}.md").write_text(report + "\n")
    print(f"\nresults: {json_path.relative_to(ROOT)} (and .md); logs: {bench.log_dir.relative_to(ROOT)}", flush=True)
    lock.close()
    if bench.errors:
        return 1
    if args.strict and any(row[4] == "MISSED" for row in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
