"""Operations endpoints: /healthz for load balancers, /metrics for Prometheus."""

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..redis_status import redis_is_available
from ..services.metrics import WebhooksCollector

bp = Blueprint("operations", __name__)


@bp.get("/healthz")
def healthz():
    """Database and Redis reachability as JSON; 503 only when the database is unreachable."""
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError:
        db.session.rollback()
        database = "unavailable"
    queue = "ok" if redis_is_available() else "unavailable"
    healthy = database == "ok"
    body = {"status": "ok" if healthy and queue == "ok" else ("degraded" if healthy else "unavailable"),
            "database": database, "redis": queue}
    return jsonify(body), 200 if healthy else 503


@bp.get("/metrics")
def metrics():
    """Prometheus metrics: with `Authorization: Bearer WEBHOOKS_METRICS_TOKEN`, or to anyone when
    WEBHOOKS_METRICS_PUBLIC is on; without either setting the endpoint does not exist (404)."""
    expected = current_app.config.get("WEBHOOKS_METRICS_TOKEN")
    if expected:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            return Response("a valid bearer token is required\n", 401, {"WWW-Authenticate": "Bearer"},
                            mimetype="text/plain")
    elif not current_app.config.get("WEBHOOKS_METRICS_PUBLIC"):
        abort(404)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WebhooksCollector())
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
