"""Delivery benchmarks: the product's end-to-end delivery rate beside the physical limit, on this machine, in one run.

    python bench/delivery.py                         # every scenario (what `make bench` runs)
    python bench/delivery.py raw naive pipeline      # some scenarios
    python bench/delivery.py --quick                 # a smoke run: a few seconds per scenario
    python bench/delivery.py pipeline --env WEBHOOKS_MAX_SENDS_PER_WEBHOOK=8   # try a setting

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
- replay:    a webhook that missed 10,000 events is replayed by a signed-in POST to …/replay (the dialog's Replay
             button): the POST's round trip and the time to the first replay message row (< 1 s each), and the
             replay's deliveries/s until all are Sent over the pipeline scenario's rate in the same run (>= 0.8; run
             `pipeline replay` together).
- fanout:    one event to 1,000 enabled webhooks: the intake round trip, and the time until the last is Sent.
- latency:   50 events/s to one webhook on a recording Python receiver: arrival - the intake's 202.
- isolation: an endpoint that accepts TCP and never answers is owed 500 messages; beside it a healthy webhook
             gets 20 events/s: its latency.
- isolation_host: two webhooks on the same https://127.0.0.1:PORT; one path hangs (reads, never answers) and is
             owed 300 messages; the other answers 204 and gets 20 events/s: its latency. The product's deadline
             is 3 s here (WEBHOOKS_TIMEOUT_SECONDS).
- retry:     one webhook whose endpoint answers 500 to the first delivery of each messageId and 204 after; the
             retry ladder is 1,1,1,1,1 s (WEBHOOKS_RETRY_DELAYS); 10 events/s: how late each retry arrives
             (2nd arrival - 1st arrival - the first delay).
- memory:    10k then 100k messages in Scheduled retry (far future), worker and scheduler running: peak RSS.
- profile:   (when py-spy is installed) py-spy on two worker processes during a pipeline run: on-CPU and
             wall-clock (--idle) top functions. Runs apart from `pipeline`, whose figures it does not touch.

Needs: PostgreSQL at BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/bench_delivery; created
when missing, its schema `public` is DROPPED), redis-server (a private one on a free port is started; the shared
one is never touched), nginx (installed with apt-get when missing). Only 127.0.0.1 is contacted.
Layout: this file is the runner (command line, run lock, report); bench/harness.py holds the shared parts
(Product, Bench, sizes), bench/scenarios/<name>.py one module per scenario.
Results: a markdown table on stdout, and bench/results/delivery-<timestamp>.{json,md} plus the processes' logs.
"""

import argparse
import fcntl
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import psutil  # noqa: E402
from harness import ROOT, Bench, Table, log  # noqa: E402
from scenarios import MODULES, SCENARIOS  # noqa: E402


def build_rows(bench: Bench) -> list[tuple[str, str, str, str, str]]:
    table = Table()
    for name in SCENARIOS:
        if name in bench.results:
            MODULES[name].rows(bench, table)
    rows = table.rows
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
    try:
        for name in scenarios:
            log(f"--- {name}")
            started = time.monotonic()
            try:
                bench.results[name] = MODULES[name].run(bench)
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
        markdown_table(rows), cpu_table(bench), logs_text(bench),
        MODULES["profile"].report_text(bench) if "profile" in scenarios else "",
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
