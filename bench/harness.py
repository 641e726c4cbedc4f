"""The delivery benchmark's shared parts: run sizes, the product's processes, the Bench (resources started on
first use, results, logs) and the small helpers every scenario uses."""

import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(BENCH), str(ROOT), str(ROOT / "tests"), str(ROOT / "bin")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import requests  # noqa: E402
from cpu_meter import CpuMeter  # noqa: E402
from receivers import NginxReceiver, make_tls  # noqa: E402
from servers import free_port, wait_for  # noqa: E402
from stack import (  # noqa: E402
    BENCH_SECRET_KEY,
    DEFAULT_DATABASE_URL,
    BenchDatabase,
    ProcfileProcess,
    RedisServer,
    SqliteBenchDatabase,
    instance_folder,
    postgres_pids,
    process_tree,
    procfile_commands,
    procfile_environment,
)

WORKER_THREADS = 8
CLIENT_THREADS = 8
PIPELINE_WEBHOOKS = 10
MB = 1024 * 1024


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
    isolation_host_owed: int
    isolation_host_rate: float
    isolation_host_seconds: float
    retry_rate: float
    retry_seconds: float
    replay_events: int = 10_000
    intake_seconds: float = 10  # each closed-loop measurement of the intake scenario


FULL = Sizes(raw_seconds=10, naive_messages=20_000, pipeline_events=1500, fanout_webhooks=1000, fanout_repeats=3,
             latency_rate=50, latency_seconds=30, isolation_owed=500, isolation_rate=20, isolation_seconds=20,
             memory_rows=(10_000, 100_000), memory_seconds=20, profile_seconds=10, wait_seconds=240,
             isolation_host_owed=300, isolation_host_rate=20, isolation_host_seconds=20,
             retry_rate=10, retry_seconds=20)
QUICK = Sizes(raw_seconds=3, naive_messages=3_000, pipeline_events=60, fanout_webhooks=200, fanout_repeats=1,
              latency_rate=50, latency_seconds=5, isolation_owed=200, isolation_rate=20, isolation_seconds=5,
              memory_rows=(10_000, 100_000), memory_seconds=6, profile_seconds=3, wait_seconds=90,
              isolation_host_owed=200, isolation_host_rate=20, isolation_host_seconds=5,
              retry_rate=10, retry_seconds=5, replay_events=2_000, intake_seconds=3)


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
    """The Procfile's web, worker and scheduler for one measurement, against the bench database and Redis.

    `environment`: the scenario's own settings for the product (WEBHOOKS_*); --env overrides them.
    """

    def __init__(self, bench: "Bench", label: str, processes: int, web: bool = True, scheduler: bool = True,
                 environment: dict[str, str] | None = None, worker: bool = True, database=None):
        self.bench = bench
        self.label = label
        self.processes = processes
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        environment = procfile_environment(
            (database or bench.database).url, bench.redis.url, bench.tls.ca_path,
            {"PORT": str(self.port), "WORKER_PROCESSES": str(processes), "WORKER_THREADS": str(WORKER_THREADS),
             **(environment or {}), **bench.overrides},
        )
        commands = procfile_commands()
        # The Procfile binds 0.0.0.0 for Heroku; the benchmark listens on loopback only.
        commands["web"] = commands["web"].replace("0.0.0.0", "127.0.0.1")
        names = (["worker"] if worker else []) + (["scheduler"] if scheduler else []) + (["web"] if web else [])
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
            if "worker" in self.parts and not self.worker_ready():
                return False
            if "scheduler" in self.parts and "scheduler started" not in self.parts["scheduler"].output():
                return False
            if "web" in self.parts:
                try:
                    return requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
                except requests.RequestException:
                    return False
            return True

        wait_for(ready, timeout=90, interval=0.2, message=f"{self.label}: {', '.join(self.parts)} to be ready")

    def worker_ready(self) -> bool:
        return self.parts["worker"].output().count("Worker process is ready for action.") >= self.processes

    def worker_pids(self) -> list[int]:
        """The Dramatiq worker processes (children of the worker's main process)."""
        # tasks.worker's are multiprocessing's spawned children; its resource tracker is not a worker.
        return [process.pid for process in process_tree(self.parts["worker"].pid)[1:]
                if "dramatiq" in " ".join(process.cmdline()) or "spawn_main" in " ".join(process.cmdline())]

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
        self._sqlite_database: SqliteBenchDatabase | None = None
        self._apps: dict = {}

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
    def sqlite_database(self) -> SqliteBenchDatabase:
        """A SQLite file of the benchmark's own (in its temporary folder), migrated on first use."""
        if self._sqlite_database is None:
            database = SqliteBenchDatabase(os.path.join(self.tmp, "bench.sqlite3"))
            environment = procfile_environment(database.url, self.redis.url, self.tls.ca_path, self.overrides)
            log(f"migrating {database.url}")
            database.reset(environment)
            self._sqlite_database = database
        return self._sqlite_database

    @property
    def app(self):
        return self.app_for(self.database)

    def app_for(self, database):
        """The product's Flask app on one of the bench databases, for setting up webhooks and tokens."""
        if database.url not in self._apps:
            os.environ["SECRET_KEY"] = BENCH_SECRET_KEY
            os.environ["WEBHOOKS_INSTANCE_PATH"] = instance_folder()
            os.environ.pop("WEBHOOKS_ENCRYPTION_KEY", None)
            from webhooks_app import create_app
            from webhooks_app.config import normalize_database_url

            self._apps[database.url] = create_app({
                "SQLALCHEMY_DATABASE_URI": normalize_database_url(database.url), "REDIS_URL": self.redis.url,
                **{k: v for k, v in self.overrides.items() if k == "WEBHOOKS_ENCRYPTION_KEY"}})
            import logging

            logging.getLogger().setLevel(logging.WARNING)
        return self._apps[database.url]

    def setting(self, environment: dict[str, str], name: str) -> str | None:
        """What a Product started with this scenario `environment` gets for `name` (--env wins), None if unset."""
        return self.overrides.get(name, environment.get(name))

    def fresh_state(self) -> None:
        """Empty tables and the private Redis between measurements (no product process is running)."""
        self.database.truncate()
        self.redis.client().flushall()

    def make_webhooks(self, urls_and_events: list[tuple[str, tuple[str, ...]]], database=None) -> list[int]:
        from webhooks_app.extensions import db
        from webhooks_app.services.webhooks import WebhookFields, create_webhook

        with self.app_for(database or self.database).app_context():
            ids = []
            for index, (url, events) in enumerate(urls_and_events):
                webhook, _ = create_webhook(WebhookFields(f"bench {index}", url, events, True))
                ids.append(webhook.id)
            db.session.commit()
            db.session.remove()
        return ids

    def make_token(self, database=None) -> str:
        from webhooks_app.extensions import db
        from webhooks_app.services.api_tokens import create_api_token

        with self.app_for(database or self.database).app_context():
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
        for database in (self._database, self._sqlite_database):
            if database is not None:
                database.close()
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


# --- the report table --------------------------------------------------------------------------------------------


class Table:
    """The report's rows: (scenario, figure, value, target, result); a target is (">=" or "<", limit)."""

    def __init__(self):
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(self, scenario: str, figure: str, value, target: tuple[str, float] | None = None, unit: str = "") -> None:
        shown = "n/a" if value is None else (f"{value:,.2f}" if isinstance(value, float) and value < 10
                                             else f"{value:,.0f}" if isinstance(value, float) else f"{value}")
        self.rows.append((scenario, figure, shown + unit if value is not None else shown,
                          target_text(target) if target else "—", verdict(target, value) if target else ""))


def verdict(target: tuple[str, float], value) -> str:
    if value is None:
        return "n/a"
    operator, limit = target
    met = value >= limit if operator == ">=" else value < limit
    return "met" if met else "MISSED"


def target_text(target: tuple[str, float]) -> str:
    operator, limit = target
    return f"{'≥' if operator == '>=' else '<'} {limit:g}"
