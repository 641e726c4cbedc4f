"""The scheduler process: APScheduler's BlockingScheduler runs the periodic jobs (`python -m tasks.scheduler`)."""

import logging

from apscheduler.schedulers.blocking import BlockingScheduler

from tasks.delivery import requeue_due_messages
from webhooks_app import create_app

logger = logging.getLogger("tasks.scheduler")



def periodic_jobs(config) -> list[tuple]:
    """(function, trigger arguments) of every periodic job."""
    return [
        (requeue_due_messages, {"trigger": "interval", "seconds": config["WEBHOOKS_SWEEP_INTERVAL_SECONDS"],
                                "max_instances": 1, "coalesce": True}),
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
    logger.info("scheduler started with jobs: %s", [job.id for job in scheduler.get_jobs()] or "none")
    scheduler.start()


if __name__ == "__main__":
    main()
