"""The scheduler process: APScheduler's BlockingScheduler runs the periodic jobs (`python -m tasks.scheduler`)."""

import logging

from apscheduler.schedulers.blocking import BlockingScheduler

from webhooks_app import create_app
from webhooks_app.services.dispatch import requeue_due_messages
from webhooks_app.services.fan_out import requeue_fan_outs
from webhooks_app.services.notifications import requeue_owed_notifications
from webhooks_app.services.replay import resume_replays
from webhooks_app.services.retention import catch_up_prune, enqueue_nightly_prune
from webhooks_app.services.secret_rotation import clear_expired_secrets_job

logger = logging.getLogger("tasks.scheduler")


def periodic_jobs(config) -> list[tuple]:
    """(function, trigger arguments) of every periodic job."""
    every_sweep = {"trigger": "interval", "seconds": config["WEBHOOKS_SWEEP_INTERVAL_SECONDS"],
                   "max_instances": 1, "coalesce": True}
    return [
        (requeue_due_messages, every_sweep),
        # A batch's fan-out whose queue entry was lost (or never made: Redis was down) is sent again.
        (requeue_fan_outs, every_sweep),
        # A replay whose queue entry was lost (or never made: Redis was down) is put back on the queue.
        (resume_replays, every_sweep),
        # A warning or Disabled email whose queue entry was lost (or never made: Redis was down) is queued again.
        (requeue_owed_notifications, every_sweep),
        # A reset secret's overlap ends: the replaced secret leaves the database within a sweep of expiring.
        (clear_expired_secrets_job, every_sweep),
        # A generous grace time: a scheduler restarted a few hours after 03:00 still runs the night's prune.
        (enqueue_nightly_prune, {"trigger": "cron", "hour": 3, "minute": 0, "misfire_grace_time": 6 * 3600,
                                 "coalesce": True, "max_instances": 1}),
    ]


def build_scheduler(app) -> BlockingScheduler:
    """A scheduler holding every periodic job, each run inside an app context."""
    scheduler = BlockingScheduler(timezone="UTC")
    for job, trigger in periodic_jobs(app.config):
        def run(job=job):
            with app.app_context():
                job()
        scheduler.add_job(run, id=job.__name__, name=job.__name__, **trigger)
    return scheduler


def main() -> None:
    app = create_app()
    scheduler = build_scheduler(app)
    with app.app_context():
        if catch_up_prune():
            logger.info("no prune in the last day: one was enqueued now")
    logger.info("scheduler started with jobs: %s", [job.id for job in scheduler.get_jobs()] or "none")
    scheduler.start()


if __name__ == "__main__":
    main()
