"""The queue alerts of the webhook pages: Redis unavailable, and batches waiting for the worker."""

from dataclasses import dataclass

from flask import render_template

from .redis_status import redis_is_available
from .services.fan_out import LateFanOuts, late_fan_outs


@dataclass(frozen=True)
class QueueAlerts:
    redis_available: bool
    late_fan_outs: LateFanOuts | None

    @property
    def state(self) -> str:
        """What the alerts show, for a live poll to tell whether to redraw them."""
        return ("up" if self.redis_available else "down") + (f"|late:{self.late_fan_outs.fingerprint}"
                                                             if self.late_fan_outs else "")

    def context(self) -> dict:
        """The template variables base.html includes the alerts by."""
        return {"redis_available": self.redis_available, "late_fan_outs": self.late_fan_outs}

    def out_of_band(self) -> str:
        """Both alerts, to swap in out of band from a live poll's answer."""
        return (render_template("_redis_alert.html", oob=True, redis_available=self.redis_available)
                + render_template("_fan_out_alert.html", oob=True, late_fan_outs=self.late_fan_outs))


def queue_alerts() -> QueueAlerts:
    """Ask Redis whether it answers and the database whether batches wait too long for the worker."""
    return QueueAlerts(redis_is_available(), late_fan_outs())
