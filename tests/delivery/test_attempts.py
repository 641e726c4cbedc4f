"""Single delivery attempts against real HTTPS endpoints: what counts as success and how failures are named."""

import socket
import ssl

import pytest
import trustme
from conftest import free_port
from servers import Receiver
from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import Attempt, Message, MessageStatus
from webhooks_app.services.dispatch import deliver_message
from webhooks_app.services.intake import accept_event
from webhooks_app.services.transport import MAX_RESPONSE_BYTES, classify_error
from webhooks_app.services.webhooks import WebhookFields, create_webhook


def owed_message(url: str) -> int:
    """A committed Queued message for a new webhook at `url` (no queue involved)."""
    create_webhook(WebhookFields("Endpoint", url, ("asset.create",), True))
    accepted = accept_event({"type": "asset.create", "assetId": 101, "userId": 1})
    db.session.commit()
    return accepted.message_ids[0]


def attempt_of(message_id: int) -> tuple[Message, Attempt]:
    db.session.expire_all()
    message = db.session.get(Message, message_id)
    return message, db.session.scalars(select(Attempt).where(Attempt.message_id == message_id)).one()


def test_2xx_is_sent(app_context, receiver):
    """A 204 answer marks the message Sent and records the attempt's status code and duration."""
    message_id = owed_message(receiver.url("/ok"))
    assert deliver_message(message_id) == "sent"
    message, attempt = attempt_of(message_id)
    assert message.status == MessageStatus.SENT and message.attempts_made == 1
    assert attempt.succeeded and attempt.status_code == 204 and attempt.error_kind is None
    assert attempt.duration_ms >= 0


def test_a_cookie_set_by_an_endpoint_is_never_sent_back(app_context, receiver):
    """Deliveries carry no cookie jar: a Set-Cookie answer does not show up in the next delivery."""
    for _ in range(2):
        assert deliver_message(owed_message(receiver.url("/cookie/ok"))) == "sent"
    first, second = receiver.received
    assert "Cookie" not in first.headers and "Cookie" not in second.headers


def test_500_schedules_a_retry_with_the_answer_recorded(app, app_context, receiver):
    """A 500 answer is a failure: Scheduled retry after the first ladder step, answer text kept."""
    message_id = owed_message(receiver.url("/status/500"))
    assert deliver_message(message_id) == "retry_scheduled"
    message, attempt = attempt_of(message_id)
    assert message.status == MessageStatus.SCHEDULED_RETRY
    delay = (message.next_attempt_at - attempt.started_at).total_seconds()
    assert app.config["WEBHOOKS_RETRY_DELAYS"][0] <= delay < app.config["WEBHOOKS_RETRY_DELAYS"][0] + 5
    assert attempt.status_code == 500 and attempt.error_kind == "http_status"
    assert attempt.response_excerpt == "answer /status/500"


def test_redirect_is_a_failure_and_not_followed(app_context, receiver):
    """A 301 fails the attempt as a redirect, and the Location is never requested."""
    message_id = owed_message(receiver.url("/status/301"))
    deliver_message(message_id)
    _, attempt = attempt_of(message_id)
    assert attempt.error_kind == "redirect" and attempt.status_code == 301
    assert [r.path for r in receiver.received] == ["/status/301"]


def test_refused_connection(app_context):
    """Nothing listening on the port fails the attempt as refused."""
    message_id = owed_message(f"https://127.0.0.1:{free_port()}/hook")
    deliver_message(message_id)
    _, attempt = attempt_of(message_id)
    assert attempt.error_kind == "refused" and attempt.status_code is None


def test_endpoint_that_never_answers_times_out(app, app_context, silent_server):
    """An endpoint that accepts and never answers is cut off at the deadline as a timeout."""
    message_id = owed_message(silent_server.url())
    deliver_message(message_id)
    _, attempt = attempt_of(message_id)
    timeout_ms = app.config["WEBHOOKS_TIMEOUT_SECONDS"] * 1000
    assert attempt.error_kind == "timeout"
    assert timeout_ms - 100 <= attempt.duration_ms < timeout_ms + 1500


def test_trickling_answer_is_cut_at_the_total_deadline_not_taken_as_200(app, app_context, trickling_server):
    """A server trickling "200 OK" one byte a second is cut at the total deadline and recorded as a timeout."""
    message_id = owed_message(trickling_server.url())
    deliver_message(message_id)
    message, attempt = attempt_of(message_id)
    timeout_ms = app.config["WEBHOOKS_TIMEOUT_SECONDS"] * 1000
    assert attempt.error_kind == "timeout" and attempt.status_code is None and not attempt.succeeded
    assert timeout_ms - 100 <= attempt.duration_ms < timeout_ms + 1500
    assert message.status == MessageStatus.SCHEDULED_RETRY


def test_untrusted_certificate_is_a_tls_failure(app_context):
    """An endpoint whose certificate comes from an unknown CA fails as a TLS error, unsent."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    stranger = Receiver(context).start()
    try:
        message_id = owed_message(stranger.url("/ok"))
        deliver_message(message_id)
        _, attempt = attempt_of(message_id)
    finally:
        stranger.stop()
    assert attempt.error_kind == "tls" and "certificate" in attempt.error_detail.lower()
    assert stranger.received == []


def test_oversize_answer_is_read_only_up_to_64_kib(app_context, receiver):
    """A 1 MiB answer body still counts as a 2xx; only the first 1 KiB is kept."""
    message_id = owed_message(receiver.url("/big"))
    assert deliver_message(message_id) == "sent"
    _, attempt = attempt_of(message_id)
    assert attempt.status_code == 200 and attempt.response_excerpt == "x" * 1024
    assert MAX_RESPONSE_BYTES == 64 * 1024


def test_a_duplicate_queue_message_does_not_send_twice(app_context, receiver):
    """Delivering the same message id twice (a duplicate Dramatiq message) makes one POST."""
    message_id = owed_message(receiver.url("/ok"))
    assert deliver_message(message_id) == "sent"
    assert deliver_message(message_id) == "not_due"
    assert len(receiver.received) == 1


def test_a_claimed_message_is_not_sent_by_a_second_worker(app_context, receiver):
    """While one worker holds the claim, another's claim fails and it sends nothing."""
    from webhooks_app.services.dispatch import claim_message

    message_id = owed_message(receiver.url("/ok"))
    assert claim_message(message_id)
    db.session.commit()
    assert deliver_message(message_id) == "not_due"
    assert receiver.received == []


def test_message_due_while_webhook_disabled_fails_unsent(app_context, receiver):
    """A message whose webhook was disabled before its attempt ends Failed with that reason, unsent."""
    from webhooks_app.services.webhooks import set_webhook_enabled

    message_id = owed_message(receiver.url("/ok"))
    message = db.session.get(Message, message_id)
    set_webhook_enabled(message.webhook_id, False)
    db.session.commit()
    assert deliver_message(message_id) == "failed"
    db.session.expire_all()
    message = db.session.get(Message, message_id)
    assert message.status == MessageStatus.FAILED and "disabled" in message.failure_reason
    set_webhook_enabled(message.webhook_id, True)
    db.session.commit()
    assert deliver_message(message_id) == "not_due"
    assert receiver.received == []


def test_message_due_after_webhook_deleted_fails_unsent(app_context, receiver):
    """A message whose webhook was deleted ends Failed, unsent."""
    from webhooks_app.services.webhooks import delete_webhook

    message_id = owed_message(receiver.url("/ok"))
    delete_webhook(db.session.get(Message, message_id).webhook_id)
    db.session.commit()
    assert deliver_message(message_id) == "failed"
    db.session.expire_all()
    assert "deleted" in db.session.get(Message, message_id).failure_reason
    assert receiver.received == []


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns"),
        (ConnectionRefusedError(111, "Connection refused"), "refused"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls"),
        (TimeoutError("timed out"), "timeout"),
    ],
)
def test_errors_are_classified_by_their_root_cause(error, kind):
    """The error kind comes from the root cause, however deeply requests wraps it."""
    import requests
    import urllib3

    wrapped = requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason=error))
    assert classify_error(wrapped, "hooks.example.com")[0] == kind


def test_sends_to_one_endpoint_reuse_the_connection(receiver, certificates):
    """Consecutive sends from one thread to one endpoint travel on one kept-alive TLS connection."""
    from webhooks_app.services.transport import post_json

    for _ in range(3):
        result = post_json(receiver.url("/ok"), b"{}", {}, timeout=2, allow_private=True, verify=certificates.ca_path)
        assert result.succeeded
    assert len({r.client_port for r in receiver.received}) == 1


def test_an_oversize_answer_does_not_poison_the_next_send(receiver, certificates):
    """After an answer cut at 64 KiB, the next send to the same endpoint succeeds on a fresh connection."""
    from webhooks_app.services.transport import post_json

    big = post_json(receiver.url("/big"), b"{}", {}, timeout=2, allow_private=True, verify=certificates.ca_path)
    after = post_json(receiver.url("/ok"), b"{}", {}, timeout=2, allow_private=True, verify=certificates.ca_path)
    assert big.succeeded and after.succeeded and after.status_code == 204
    assert receiver.received[0].client_port != receiver.received[1].client_port


def test_new_connections_share_one_tls_context_per_ca_bundle(certificates):
    """Connections to new endpoints (from new threads) reuse one verifying context: the CA bundle is parsed once."""
    import threading

    from webhooks_app.services.transport import post_json, verifying_context

    receivers = [Receiver(certificates.server_context).start() for _ in range(3)]
    try:
        post_json(receivers[0].url("/ok"), b"{}", {}, timeout=2, allow_private=True, verify=certificates.ca_path)
        parsed_before = verifying_context.cache_info().misses
        results = []

        def send_to_each():
            for receiver in receivers:
                results.append(post_json(receiver.url("/ok"), b"{}", {}, timeout=2, allow_private=True,
                                         verify=certificates.ca_path))

        threads = [threading.Thread(target=send_to_each) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        for receiver in receivers:
            receiver.stop()
    assert len(results) == 6 and all(result.succeeded for result in results)
    assert verifying_context.cache_info().misses == parsed_before
    assert len({r.client_port for receiver in receivers for r in receiver.received}) >= 6  # new connections


def test_a_trusted_certificate_for_another_host_name_is_a_tls_failure(certificates):
    """The shared context still checks the host name: a certificate from the trusted CA for another name fails."""
    from webhooks_app.services.transport import post_json

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificates.ca.issue_cert("hooks.example.org").configure_cert(context)
    impostor = Receiver(context).start()
    try:
        result = post_json(impostor.url("/ok"), b"{}", {}, timeout=2, allow_private=True, verify=certificates.ca_path)
    finally:
        impostor.stop()
    assert result.error_kind == "tls" and not result.succeeded
    assert impostor.received == []


def test_a_secret_unreadable_after_a_key_change_fails_the_message_unsent(app, app_context, receiver):
    """After SECRET_KEY changes, a stored secret used moments ago no longer decrypts: the message fails, unsent."""
    first = owed_message(receiver.url("/ok"))
    assert deliver_message(first) == "sent"
    second = accept_event({"type": "asset.create", "assetId": 102, "userId": 1}).message_ids[0]
    db.session.commit()
    original = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "another key entirely, as after a careless redeploy"
    try:
        outcome = deliver_message(second)
    finally:
        app.config["SECRET_KEY"] = original
    db.session.expire_all()
    assert outcome == "failed"
    assert "cannot be decrypted" in db.session.get(Message, second).failure_reason
    assert len(receiver.received) == 1


def test_an_extra_ca_is_trusted_without_writing_any_file(app, app_context, receiver):
    """WEBHOOKS_CA_BUNDLE is loaded into the TLS context directly: a delivery leaves no CA file in the temp folder."""
    import glob
    import os
    import tempfile

    assert app.config["WEBHOOKS_CA_BUNDLE"]
    assert deliver_message(owed_message(receiver.url("/ok"))) == "sent"
    assert glob.glob(os.path.join(tempfile.gettempdir(), f"webhooks-ca-{os.getpid()}-*")) == []


def test_an_endpoint_echoing_the_body_never_gets_the_secret_stored(app_context, receiver):
    """The stored first 1 KiB of an answer that echoes the message has the webhook's secret removed."""
    message_id = owed_message(receiver.url("/echo"))
    assert deliver_message(message_id) == "sent"
    (delivery,) = receiver.received
    secret = delivery.json()["token"]
    _, attempt = attempt_of(message_id)
    assert secret not in attempt.response_excerpt
    assert '"token":"[secret removed]"' in attempt.response_excerpt


def test_every_form_of_the_secret_is_removed_from_an_answer():
    """Raw, base64 (the whsec_ form) and JSON-escaped base64 forms of the secret are all removed."""
    from webhooks_app.secrets_vault import whsec_form
    from webhooks_app.services.transport import secret_forms, without_forms

    secret = "a??b" * 7  # its base64 holds "/", which PHP's json_encode writes as "\\/"
    whsec = whsec_form(secret)
    answer = f'{{"token":"{secret}","key":"{whsec}","php":"{whsec.replace("/", chr(92) + "/")}"}}'.encode()
    cleaned = without_forms(answer, secret_forms((secret, whsec)))
    assert secret.encode() not in cleaned and whsec.removeprefix("whsec_").encode() not in cleaned
    assert cleaned.count(b"[secret removed]") == 3


def test_a_host_name_idna_refuses_is_a_recorded_dns_failure(app_context):
    """A stored URL whose host has a 64-character label (saved before the rules) fails as DNS, on the ladder."""
    from sqlalchemy import update

    from webhooks_app.models import Webhook

    message_id = owed_message("https://hooks.example.com/x")
    db.session.execute(update(Webhook).values(url="https://" + "a" * 64 + ".example/"))
    db.session.commit()
    assert deliver_message(message_id) == "retry_scheduled"
    message, attempt = attempt_of(message_id)
    assert attempt.error_kind == "dns" and "not a valid DNS name" in attempt.error_detail
    assert message.status == MessageStatus.SCHEDULED_RETRY
