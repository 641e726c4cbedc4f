"""The nightly prune of the activity log, guarded by a Redis lock so two schedulers never run it at once."""

import logging
import time

from flask import current_app

from webhooks_app.queue import actor
from webhooks_app.services.retention import PruneReport, prune_log

logger = logging.getLogger(__name__)

PRUNE_LOCK_KEY = "webhooks:lock:prune-log"
PRUNE_LOCK_SECONDS = 3600
LAST_PRUNE_KEY = "webhooks:last-prune"
PRUNE_EVERY_SECONDS = 24 * 3600


def prune_log_once() -> PruneReport | None:
    """Run the prune unless another process holds the lock; None when another process is pruning."""
    client = current_app.extensions["dramatiq_broker"].client
    lock = client.lock(PRUNE_LOCK_KEY, timeout=PRUNE_LOCK_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        logger.info("prune skipped: another process is pruning the activity log")
        return None
    try:
        report = prune_log(current_app.config["WEBHOOKS_LOG_RETENTION_DAYS"])
        client.set(LAST_PRUNE_KEY, int(time.time()))
    finally:
        lock.release()
    return report


@actor(queue_name="maintenance", max_retries=3, time_limit=3_600_000)
def prune_activity_log() -> None:
    """Nightly: delete activity-log rows older than the retention period (idempotent)."""
    prune_log_once()


def enqueue_nightly_prune() -> None:
    """The scheduler's nightly job: hand the prune to a worker."""
    prune_activity_log.send()


def catch_up_prune() -> bool:
    """At scheduler start: enqueue a prune when none ran in the last day (a restart skipped the night)."""
    client = current_app.extensions["dramatiq_broker"].client
    last = client.get(LAST_PRUNE_KEY)
    if last is not None and time.time() - int(last) < PRUNE_EVERY_SECONDS:
        return False
    enqueue_nightly_prune()
    return True
