"""Benchmark the activity-log pages and the retention prune on a large log.

Builds a fresh database (SQLite in a temporary folder and/or PostgreSQL), migrates it, fills it with
--messages messages over --webhooks webhooks spread across 30 days (with their events and attempts),
then times the pages through Flask's test client and finally times prune_log(30) over ~all rows.

    python bench/log_pages.py                         # both databases, 1,000,000 messages
    python bench/log_pages.py --database sqlite --messages 100000
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/log_pages.py --database postgresql

PostgreSQL: BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/bench); the database is
created when missing and its schema `public` is DROPPED and recreated. Never point it at real data.
Redis: the Webhooks page pings REDIS_URL (default redis://127.0.0.1:6379/0); nothing is written to it.

Each page is requested --warmups times, then timed --runs times: wall-clock median and p95 (nearest rank),
the benchmark process's CPU time (which includes SQLite's work; on PostgreSQL the server backends' CPU is
added from /proc), the SQL statements with their cursor.execute time, and the time spent in each data and
rendering function of the page (wrapped in memory by this script; no app file changes).

The prune runs prune_log(30) with its clock 40 days ahead, so every Sent/Failed row is past the retention as
if it had aged (rewriting 2.2M rows with UPDATE would instead leave PostgreSQL half dead tuples). Meanwhile a
second connection UPDATEs one pending message every 50 ms; its worst latency shows how long a batch blocks
other writers (SQLite has one writer at a time).

--explain prints the plan of every SQL statement of every page (EXPLAIN QUERY PLAN on SQLite,
EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL); --profile PAGE prints a cProfile of that page's timed requests;
--max-load waits (up to 10 minutes) for a quieter machine before timing the pages.
"""

from . import common  # noqa: F401  (the instance folder and SECRET_KEY are set before the app is imported)
