"""profile: (when py-spy is installed) py-spy on two worker processes during a pipeline run: on-CPU and
wall-clock (--idle) top functions. Runs apart from `pipeline`, whose figures it does not touch."""

import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from clients import EventClient, asset_event
from deliveries import warm_up
from harness import CLIENT_THREADS, PIPELINE_WEBHOOKS, ROOT, Bench, Product, Table, log
from stack import BIN


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


def run(bench: Bench) -> dict:
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


def rows(bench: Bench, table: Table) -> None:
    """The profile adds no row to the table; its text follows the report (`report_text`)."""


def report_text(bench: Bench) -> str:
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
