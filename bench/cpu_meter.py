"""CPU accounting for the delivery benchmark: CPU seconds per component over a measurement window."""

import os
import time
from collections import Counter

import psutil
from stack import process_tree


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


def cpu_per_unit(cpu: dict, units: int) -> dict:
    if not units:
        return {}
    return {name: round(1000 * seconds / units, 3) for name, seconds in cpu["cpu_s"].items()}
