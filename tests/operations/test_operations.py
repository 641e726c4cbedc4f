"""Operations endpoints: /healthz and /metrics."""

from datetime import timedelta

from conftest import free_port
from factories import make_message, make_webhook

from webhooks_app.extensions import db
from webhooks_app.models import MessageStatus


def test_healthz_reports_database_and_redis_without_auth_or_secrets(app, client, redis_url):
    """/healthz answers anonymously with each dependency's state and no connection details."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert "redis://" not in response.get_data(as_text=True) and "127.0.0.1" not in response.get_data(as_text=True)


def test_healthz_is_degraded_but_up_without_redis(app, client, redis_url):
    """With Redis down the web process still serves (200) and says Redis is unavailable."""
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    try:
        response = client.get("/healthz")
    finally:
        app.config["REDIS_URL"] = redis_url
    assert response.status_code == 200
    assert response.get_json() == {"status": "degraded", "database": "ok", "redis": "unavailable"}


def test_metrics_count_messages_attempts_and_redis(app, client, api_token, fresh_redis, monkeypatch):
    """/metrics reports messages by status, webhooks by state, recent attempts with durations, batches waiting for
    their fan-out, and Redis."""
    monkeypatch.setitem(app.config, "WEBHOOKS_METRICS_PUBLIC", True)
    with app.app_context():
        webhook_id = make_webhook()
        make_message(webhook_id, MessageStatus.SENT, attempts=[(True, 204, None, "")])
        make_message(webhook_id, MessageStatus.FAILED, age=timedelta(minutes=5),
                     attempts=[(False, 500, "http_status", "")] * 2)
        db.session.commit()
    client.post("/api/v1/events", json={"type": "asset.create", "assetId": 1, "userId": 1},
                headers={"Authorization": f"Bearer {api_token}"})
    assert "webhooks_fan_outs_waiting 0.0" in client.get("/metrics").get_data(as_text=True)
    client.post("/api/v1/events", json=[{"type": "asset.create", "assetId": 2, "userId": 1}],
                headers={"Authorization": f"Bearer {api_token}"})
    text = client.get("/metrics").get_data(as_text=True)
    assert "webhooks_fan_outs_waiting 1.0" in text
    (age,) = [float(line.split()[1]) for line in text.splitlines()
              if line.startswith("webhooks_fan_out_oldest_seconds ")]
    assert 0 < age < 60
    assert 'webhooks_messages{status="sent"} 1.0' in text
    assert 'webhooks_messages{status="failed"} 1.0' in text
    assert 'webhooks_messages{status="queued"} 1.0' in text
    assert 'webhooks_webhooks{state="enabled"} 1.0' in text
    assert 'webhooks_attempts_last_hour{outcome="succeeded"} 1.0' in text
    assert 'webhooks_attempts_last_hour{outcome="failed"} 2.0' in text
    assert 'webhooks_attempt_duration_seconds_last_hour_bucket{le="0.05"} 3.0' in text
    assert "webhooks_queue_depth" not in text  # Dramatiq's keys are its own: the backlog comes from the database
    assert "webhooks_redis_up 1.0" in text


def test_metrics_need_the_bearer_token_when_one_is_configured(app, client, monkeypatch):
    """With WEBHOOKS_METRICS_TOKEN set, /metrics answers 401 without it and 200 with it (even if also public)."""
    monkeypatch.setitem(app.config, "WEBHOOKS_METRICS_TOKEN", "scrape-me")
    monkeypatch.setitem(app.config, "WEBHOOKS_METRICS_PUBLIC", True)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200


def test_metrics_are_not_served_unless_a_token_or_public_access_is_configured(app, client, monkeypatch):
    """Without WEBHOOKS_METRICS_TOKEN and WEBHOOKS_METRICS_PUBLIC, /metrics answers 404 and reveals nothing."""
    monkeypatch.setitem(app.config, "WEBHOOKS_METRICS_TOKEN", None)
    monkeypatch.setitem(app.config, "WEBHOOKS_METRICS_PUBLIC", False)
    response = client.get("/metrics")
    assert response.status_code == 404
    assert "webhooks_" not in response.get_data(as_text=True)


def test_metrics_public_setting_is_read_from_the_environment(tmp_path):
    """WEBHOOKS_METRICS_PUBLIC=1 opens /metrics; by default it is closed."""
    from webhooks_app.config import settings_from_environment

    assert settings_from_environment({"WEBHOOKS_INSTANCE_PATH": str(tmp_path)})["WEBHOOKS_METRICS_PUBLIC"] is False
    assert settings_from_environment({"WEBHOOKS_INSTANCE_PATH": str(tmp_path),
                                      "WEBHOOKS_METRICS_PUBLIC": "1"})["WEBHOOKS_METRICS_PUBLIC"] is True
