"""Shared by the log-pages benchmark: settings, constants and the app's imports (after the instance folder is set)."""

import atexit
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT))

# Keep the app's instance folder (secret key file) out of the work tree, before the app is imported.
_INSTANCE = tempfile.mkdtemp(prefix="webhooks-bench-instance-")
atexit.register(shutil.rmtree, _INSTANCE, ignore_errors=True)
os.environ["WEBHOOKS_INSTANCE_PATH"] = _INSTANCE
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")

from webhooks_app.config import DEFAULT_RETRY_DELAYS  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bench"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench password 123"
CSRF_IN_BODY = re.compile(r'"X-CSRFToken": "([^"]+)"')
LOG_POLLER = re.compile(r'id="log-poller"[^>]*?hx-get="([^"]+)"', re.S)
WEBHOOKS_POLLER = re.compile(r'id="webhooks-live"[^>]*?hx-get="([^"]+)"', re.S)
PAGE_TARGET_MS = 50.0
BATCH_TARGET_MS = 200.0
RECENT_ALL_SENT = timedelta(hours=3)  # the newest rows are all Sent, so the live poll has nothing in flight
QUEUED_WINDOW = timedelta(hours=48)  # a few stuck Queued messages, only this recent
FAILING_SHARE = 0.035  # messages whose every attempt fails (Failed, or Scheduled retry while the ladder runs)
QUEUED_SHARE = 0.003
RETRIED_SENT_SHARE = 0.02  # Sent on the second attempt
# When each attempt starts, after the message is created: the default retry ladder.
ATTEMPT_OFFSETS = [0.0]
for _delay in DEFAULT_RETRY_DELAYS:
    ATTEMPT_OFFSETS.append(ATTEMPT_OFFSETS[-1] + _delay)

EVENT_COLUMNS = ("id", "event_uuid", "event_type", "payload", "subject_id", "created_at")
MESSAGE_COLUMNS = ("id", "message_uuid", "webhook_id", "event_id", "event_type", "is_test", "status",
                   "attempts_made", "next_attempt_at", "claimed_until", "enqueued_at", "failure_reason",
                   "created_at", "updated_at")
ATTEMPT_COLUMNS = ("id", "message_id", "webhook_id", "number", "started_at", "duration_ms", "succeeded",
                   "status_code", "error_kind", "error_detail", "response_excerpt")
LOADED_TABLES = ("events", "messages", "attempts")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)

