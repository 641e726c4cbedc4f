"""Helpers of the management-API tests: tokens with scopes, calls with a bearer token, rows to read back."""

from sqlalchemy import select

from webhooks_app.extensions import db
from webhooks_app.models import ApiAuditEntry
from webhooks_app.services.api_tokens import SCOPES, create_api_token

ALL_SCOPES = tuple(SCOPES)
WEBHOOKS = "/api/v1/webhooks"
MESSAGES = "/api/v1/messages"
GOOD_WEBHOOK = {"name": "Asset sync", "url": "https://hooks.example.com/netx", "events": ["asset.create"]}


def scoped_token(app, scopes=ALL_SCOPES, name: str = "ops script") -> str:
    """A live bearer token with these scopes."""
    with app.app_context():
        _, token = create_api_token(name, scopes)
        db.session.commit()
        db.session.remove()
    return token


def call(client, method: str, path: str, token: str | None, json=None, headers=None):
    """One API call with `Authorization: Bearer token` (none when token is None) and a JSON body when given."""
    all_headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    return client.open(path, method=method, json=json, headers=all_headers)


def create(client, token: str, **fields):
    """POST a webhook (GOOD_WEBHOOK with `fields` changed); asserts 201 and returns the answer."""
    response = call(client, "POST", WEBHOOKS, token, json={**GOOD_WEBHOOK, **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response


def audit_entries(app) -> list[tuple[str, str, str, int, str]]:
    """(token name, method, path, status, summary) of every audit entry, oldest first."""
    with app.app_context():
        rows = db.session.execute(select(ApiAuditEntry.token_name, ApiAuditEntry.method, ApiAuditEntry.path,
                                         ApiAuditEntry.status, ApiAuditEntry.summary)
                                  .order_by(ApiAuditEntry.id)).all()
        db.session.remove()
        return [tuple(row) for row in rows]
