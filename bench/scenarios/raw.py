"""raw: os.cpu_count() processes, each a requests.Session keep-alive loop POSTing one ~400-byte body to nginx
(TLS, `return 204`) for a fixed time: the requests/s this machine can do at all."""

import multiprocessing
import os
import time

from clients import raw_client, sample_body
from cpu_meter import cpu_per_unit
from harness import Bench, Table, log


def run(bench: Bench) -> dict:
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


def rows(bench: Bench, table: Table) -> None:
    raw = bench.results["raw"]
    table.add("raw", f"requests/s, {raw['processes']} processes (context)", raw["requests_per_s"])
