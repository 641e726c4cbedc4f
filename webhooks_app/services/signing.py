"""The message body in the product document's shape, and its Standard Webhooks signature."""

import base64
import hashlib
import hmac
import json


def message_body(event_payload: dict, secret: str, message_time: int, message_uuid: str, webhook_id: int) -> bytes:
    """The JSON body: {"event": ..., "token": secret, "messageTime", "messageId", "subscriptionId"}."""
    document = {
        "event": event_payload,
        "token": secret,
        "messageTime": message_time,
        "messageId": message_uuid,
        "subscriptionId": webhook_id,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature_header(secret: str, message_uuid: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the secret's UTF-8 bytes."""
    signed = f"{message_uuid}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def delivery_headers(secrets: list[str], message_uuid: str, timestamp: int, body: bytes,
                     user_agent: str) -> dict[str, str]:
    """Headers of every send: JSON content type, product User-Agent, Standard Webhooks id/timestamp/signature.

    The signature header carries one `v1,` signature per valid secret (the current one first), space-separated,
    as the Standard Webhooks spec does during a secret's rotation.
    """
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": user_agent,
        "webhook-id": message_uuid,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature_header(secret, message_uuid, timestamp, body) for secret in secrets),
    }
