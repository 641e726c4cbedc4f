"""The benchmark's Markdown report."""

from webhooks_app.models import MessageStatus

from .common import BATCH_TARGET_MS
from .measure import REST, PageResult

LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def server_text(row: PageResult) -> str:
    return "" if row.server_cpu_mean_ms is None else f" + {row.server_cpu_mean_ms:.1f}"


def markdown_report(results: list, args) -> str:
    """The report of every database's DatabaseResult."""
    lines = []
    names = [LABELS[r.name] for r in results]
    lines.append("### Pages (ms, through the Flask test client, "
                 f"{args.runs} runs after {args.warmups} warm-ups; p95 = nearest rank)\n")
    header = "| Page |" + "".join(f" {n} median | {n} p95 | {n} CPU |" for n in names) + " Target |"
    loads = ", ".join(f"{LABELS[r.name]} {r.sizes['load'][0]:.1f} → {r.sizes['load'][1]:.1f}" for r in results)
    lines.append(f"1-minute load average before → after the page timings: {loads}\n")
    lines.append(header)
    lines.append("|---|" + "---:|---:|---:|" * len(results) + "---|")
    for index, page in enumerate(results[0].pages):
        cells = []
        missed = []
        for result in results:
            row = result.pages[index]
            cells.append(f" {row.median_ms:.1f} | {row.p95_ms:.1f} | {row.cpu_median_ms:.1f}{server_text(row)} |")
            if row.target_ms is not None and row.median_ms > row.target_ms:
                missed.append(LABELS[result.name])
        target = "—" if page.target_ms is None else f"median < {page.target_ms:.0f}"
        if missed:
            target += f" **missed on {', '.join(missed)}**"
        lines.append(f"| {page.name} |" + "".join(cells) + f" {target} |")
    lines.append("\nCPU = median CPU time of the benchmark process per request (it includes SQLite's work); on "
                 "PostgreSQL `+ N` is the server backends' mean CPU per request. With other work on the machine, "
                 "CPU is the better guide to an idle machine's wall time.")
    labels = ["log_page", "status_counts", "hourly_outcomes", "log_changes", "get_webhook", "list_webhooks",
              "webhooks_fingerprint", "redis ping", "render"]
    for result in results:
        lines.append(f"\n#### Where the time goes on {LABELS[result.name]} (medians per request, ms)\n")
        lines.append("| Page | Total | SQL execute (queries) | " + " | ".join(labels)
                     + " | Rest (Flask, sign-in, forms) |")
        lines.append("|---|" + "---:|" * (len(labels) + 3))
        for row in result.pages:
            cells = " | ".join(f"{row.parts[label]:.1f}" if label in row.parts else "" for label in labels)
            lines.append(f"| {row.name} | {row.median_ms:.1f} | {row.sql_median_ms:.1f} ({row.queries}) | {cells} | "
                         f"{row.parts.get(REST, 0.0):.1f} |")
    lines.append("\n### Fill\n")
    lines.append("| Database | Messages | Events | Attempts | Sent / Failed / Scheduled retry / Queued | "
                 "Fill s | Size MiB |")
    lines.append("|---|---:|---:|---:|---|---:|---:|")
    for result in results:
        fill = result.fill
        statuses = " / ".join(f"{fill.by_status.get(s, 0):,}" for s in (
            MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.SCHEDULED_RETRY, MessageStatus.QUEUED))
        lines.append(f"| {LABELS[result.name]} | {fill.messages:,} | {fill.events:,} | {fill.attempts:,} | "
                     f"{statuses} | {fill.seconds:.0f} | {result.sizes['bytes'] / 2**20:,.0f} |")
    prunes = [r for r in results if r.prune]
    if prunes:
        lines.append("\n### prune_log(30) over the expired log (batch target: < 200 ms)\n")
        lines.append("| Database | Total s | Messages | Attempts | Events | Batches | Median batch ms | "
                     "p95 batch ms | Longest batch ms | Concurrent UPDATE max ms (p95, count) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for result in prunes:
            p = result.prune
            flag = " **missed**" if p.longest_batch_ms > BATCH_TARGET_MS else ""
            lines.append(f"| {LABELS[result.name]} | {p.seconds:.1f} | {p.messages:,} | {p.attempts:,} | "
                         f"{p.events:,} | {p.batches} | {p.median_batch_ms:.0f} | {p.p95_batch_ms:.0f} | "
                         f"{p.longest_batch_ms:.0f}{flag} | {p.write_max_ms:.0f} ({p.write_p95_ms:.0f}, {p.writes}) |")
        lines.append("\nTime inside prune statements (s):\n")
        kinds = sorted({kind for r in prunes for kind in r.prune.statement_ms})
        lines.append("| Statement |" + "".join(f" {LABELS[r.name]} |" for r in prunes))
        lines.append("|---|" + "---:|" * len(prunes))
        for kind in kinds:
            lines.append(f"| {kind} |" + "".join(f" {r.prune.statement_ms.get(kind, 0) / 1000:.1f} |"
                                                  for r in prunes))
    return "\n".join(lines)

