"""The delivery benchmark's scenarios, in the order they run and appear in the report.

Each module has `run(bench) -> dict` (its results, stored under its name) and `rows(bench, table)`, which adds
its figures (with their targets) to the report table when it has run.
"""

from scenarios import (
    fanout,
    intake,
    isolation,
    isolation_host,
    latency,
    memory,
    naive,
    pipeline,
    profile,
    raw,
    replay,
    retry,
)

MODULES = {"raw": raw, "naive": naive, "pipeline": pipeline, "replay": replay, "fanout": fanout, "latency": latency,
           "isolation": isolation, "isolation_host": isolation_host,
           "retry": retry, "memory": memory, "intake": intake, "profile": profile}
SCENARIOS = tuple(MODULES)
