"""replay: a webhook that missed 10,000 events (stored with no message for it, as while it was disabled) is
replayed the way an administrator does it: a signed-in POST to …/webhooks/<id>/replay (the dialog's Replay
button), with the Procfile's web, worker (cores processes x 8 threads) and scheduler. Figures: the POST's round
trip, the time from the POST to the first replay message row in the database, and the time until all of them are
Sent, as deliveries/s beside the pipeline scenario's rate measured in the same run (`delivery.py pipeline replay`).
"""

import re
import time
from datetime import UTC, datetime, timedelta

import requests
from clients import EventClient
from deliveries import wait_sent, warm_up
from harness import CLIENT_THREADS, Bench, Product, Table, log, rounded

TARGET_RESPONSE_MS = ("<", 1000)
TARGET_FIRST_ROW_MS = ("<", 1000)
TARGET_OVER_PIPELINE = (">=", 0.8)
ADMIN_EMAIL = "bench@example.com"
ADMIN_PASSWORD = "bench replay password"
CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')
MISSED_EVENTS_SQL = """
INSERT INTO events (event_uuid, scope, event_type, payload, created_at)
SELECT u, 'local', 'asset.create',
       json_build_object('assetId', n, 'systemEventType', 'ASSET_CREATE', 'eventId', u, 'eventTime', 1700000000,
                         'userId', 1),
       (now() AT TIME ZONE 'utc') - interval '1 hour' + n * interval '1 millisecond'
FROM (SELECT n, gen_random_uuid()::text AS u FROM generate_series(1, %s) AS n) AS missed
"""


def make_admin(bench: Bench) -> None:
    from webhooks_app.extensions import db
    from webhooks_app.services.users import create_user

    with bench.app.app_context():
        create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)
        db.session.commit()
        db.session.remove()


def signed_in(base_url: str) -> tuple[requests.Session, str]:
    """A browser-like session signed in through the real form, and the CSRF token its pages hand to htmx."""
    session = requests.Session()
    session.trust_env = False
    token = CSRF.search(session.get(f"{base_url}/login", timeout=10).text)[1]
    answer = session.post(f"{base_url}/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                     "csrf_token": token}, allow_redirects=False, timeout=10)
    if answer.status_code != 302:
        raise RuntimeError(f"bench sign-in failed: {answer.status_code}")
    page = session.get(f"{base_url}/system/integrations/api/webhooks", timeout=10)
    return session, CSRF.search(page.text)[1]


def first_replay_row(bench: Bench, timeout: float) -> float | None:
    """Poll (every 5 ms) until a replay message row is visible; the wall-clock time it was first seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bench.database.scalar("SELECT EXISTS (SELECT 1 FROM messages WHERE replay_id IS NOT NULL)"):
            return time.time()
        time.sleep(0.005)
    return None


def run(bench: Bench) -> dict:
    sizes = bench.sizes
    events = sizes.replay_events
    bench.fresh_state()
    nginx = bench.nginx
    webhook_id, _ = bench.make_webhooks([(nginx.url("/replay"), ("asset.create",)), (nginx.url("/warm"),
                                                                                      ("folder.create",))])
    make_admin(bench)
    bench.database.execute(MISSED_EVENTS_SQL, (events,))
    bench.database.execute("ANALYZE events")
    token = bench.make_token()
    product = Product(bench, "replay", bench.cores).start()
    client = EventClient(product.base_url, token, CLIENT_THREADS)
    try:
        warm_up(bench, client, 10, 1, event_type="folder.create")
        session, csrf = signed_in(product.base_url)
        sent_before = bench.database.sent_count()
        since = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
        meter = bench.cpu_meter(product).start()
        started = time.time()
        answer = session.post(f"{product.base_url}/system/integrations/api/webhooks/{webhook_id}/replay",
                              data={"since": since, "tz_offset": "0", "csrf_token": csrf},
                              headers={"HX-Request": "true"}, timeout=30)
        answered = time.time()
        if answer.status_code != 200 or "Replay started" not in answer.text:
            raise RuntimeError(f"replay POST failed: {answer.status_code} {answer.text[:300]}")
        first_seen = first_replay_row(bench, timeout=30)
        reached = wait_sent(bench, sent_before + events, timeout=sizes.wait_seconds, interval=0.1)
        cpu = meter.stop()
        first_created = bench.database.scalar(
            "SELECT extract(epoch FROM min(created_at)) FROM messages WHERE replay_id IS NOT NULL")
        last_sent = bench.database.scalar(
            "SELECT extract(epoch FROM max(updated_at)) FROM messages WHERE replay_id IS NOT NULL AND status = 'sent'")
        replays = bench.database.connect().execute(
            "SELECT status, messages_created FROM replays").fetchall()
        counts = bench.database.status_counts()
    finally:
        client.close()
        product.stop()
    delivered = reached - sent_before
    seconds = float(last_sent) - started if last_sent is not None else None
    rate = delivered / seconds if seconds else 0.0
    result = {
        "events": events, "delivered": delivered, "complete": delivered >= events,
        "response_ms": round((answered - started) * 1000, 1),
        "first_row_ms": rounded((first_seen - started) * 1000 if first_seen else None),
        "first_row_created_ms": rounded((float(first_created) - started) * 1000 if first_created else None),
        "all_sent_s": rounded(seconds, 3), "deliveries_per_s": round(rate, 1), "replays": replays,
        "statuses": counts, "cpu": cpu,
    }
    log(f"replay: POST answered in {result['response_ms']} ms; first replay row after {result['first_row_ms']} ms; "
        f"{delivered}/{events} Sent after {seconds or float('nan'):.2f} s: {rate:.0f} deliveries/s ({replays})")
    return result


def rows(bench: Bench, table: Table) -> None:
    r = bench.results["replay"]
    table.add("replay", "POST …/replay round trip, ms", r["response_ms"], TARGET_RESPONSE_MS)
    table.add("replay", "POST to the first replay message row, ms", r["first_row_ms"], TARGET_FIRST_ROW_MS)
    table.add("replay", f"{r['events']:,} replayed messages all Sent: deliveries/s (context)", r["deliveries_per_s"])
    pipeline = bench.results.get("pipeline", {}).get("main", {}).get("deliveries_per_s")
    ratio = round(r["deliveries_per_s"] / pipeline, 2) if pipeline and r["complete"] else None
    table.add("replay", "replay rate / pipeline rate (same run; n/a without `pipeline`)", ratio, TARGET_OVER_PIPELINE)
