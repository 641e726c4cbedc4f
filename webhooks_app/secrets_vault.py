"""Webhook secrets: generation and encryption at rest with Fernet."""

import base64
import functools
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

SECRET_BYTES = 20  # token_urlsafe(20) gives 27 characters, like the document's example token


def generate_secret() -> str:
    """Return a new 27-character url-safe webhook secret."""
    return secrets.token_urlsafe(SECRET_BYTES)


def whsec_form(secret: str) -> str:
    """The Standard Webhooks form of a secret: whsec_ + base64 of its UTF-8 bytes."""
    return "whsec_" + base64.b64encode(secret.encode("utf-8")).decode("ascii")


def _fernet() -> Fernet:
    return _fernet_for(current_app.config.get("WEBHOOKS_ENCRYPTION_KEY"), current_app.config["SECRET_KEY"])


@functools.lru_cache(maxsize=4)
def _fernet_for(configured_key: str | None, secret_key: str) -> Fernet:
    if configured_key:
        return Fernet(configured_key.encode("ascii"))
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"webhooks-secret-encryption"
    ).derive(secret_key.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(secret: str) -> str:
    """Encrypt a secret for storage."""
    return _fernet().encrypt(secret.encode("utf-8")).decode("ascii")


class SecretUnreadable(RuntimeError):
    """The stored secret cannot be decrypted with the configured key."""


def decrypt_secret(token: str) -> str:
    """Decrypt a stored secret; raises SecretUnreadable when the key has changed."""
    config = current_app.config
    return _decrypt_for(token, config.get("WEBHOOKS_ENCRYPTION_KEY"), config["SECRET_KEY"])


@functools.lru_cache(maxsize=1024)
def _decrypt_for(token: str, configured_key: str | None, secret_key: str) -> str:
    # Every delivery signs with its webhook's secret: remember recent plaintexts per ciphertext and key
    # (a reset secret has a new ciphertext) instead of verifying and decrypting the same token each time.
    try:
        return _fernet_for(configured_key, secret_key).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretUnreadable(
            "the webhook secret cannot be decrypted: SECRET_KEY or WEBHOOKS_ENCRYPTION_KEY changed"
        ) from None
