"""The OpenAPI 3.1 document at /api/v1/openapi.json and the API reference page administrators read it on."""

import pytest
from conftest import make_user, sign_in
from markup import parse, select_all, select_one, texts

DOCUMENT = "/api/v1/openapi.json"
REFERENCE = "/system/integrations/api/reference"
OPERATIONS = {
    ("post", "/api/v1/events"): "events:write",
    ("get", "/api/v1/webhooks"): "webhooks:read",
    ("post", "/api/v1/webhooks"): "webhooks:write",
    ("get", "/api/v1/webhooks/{webhook_id}"): "webhooks:read",
    ("patch", "/api/v1/webhooks/{webhook_id}"): "webhooks:write",
    ("delete", "/api/v1/webhooks/{webhook_id}"): "webhooks:write",
    ("post", "/api/v1/webhooks/{webhook_id}/reset-secret"): "webhooks:write",
    ("post", "/api/v1/webhooks/{webhook_id}/test"): "webhooks:write",
    ("get", "/api/v1/webhooks/{webhook_id}/messages"): "webhooks:read",
    ("get", "/api/v1/messages"): "webhooks:read",
    ("get", "/api/v1/messages/{message_uuid}"): "webhooks:read",
    ("post", "/api/v1/messages/{message_uuid}/send-again"): "webhooks:write",
    ("post", "/api/v1/webhooks/{webhook_id}/replays"): "webhooks:write",
    ("get", "/api/v1/webhooks/{webhook_id}/replays/{replay_id}"): "webhooks:read",
    ("delete", "/api/v1/webhooks/{webhook_id}/previous-secret"): "webhooks:write",
}


def test_the_document_is_openapi_3_1_of_every_operation_with_its_scope(client):
    """The document is served without a token, is OpenAPI 3.1, and has every operation (the events intake
    included) with its scope, bearer security and the error shape on its refusals."""
    response = client.get(DOCUMENT)
    assert response.status_code == 200 and response.content_type == "application/json"
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    found = {(method, path): operation.get("x-required-scope") for path, methods in document["paths"].items()
             for method, operation in methods.items()}
    assert found == OPERATIONS
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API token (whk_…)."}
    assert document["security"] == [{"bearerAuth": []}]
    patch = document["paths"]["/api/v1/webhooks/{webhook_id}"]["patch"]
    assert {p["name"]: p["required"] for p in patch["parameters"]} == {"webhook_id": True, "If-Match": True}
    assert {"200", "404", "412", "422", "428"} <= set(patch["responses"])
    assert patch["responses"]["412"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"}
    assert set(patch["responses"]["200"]["headers"]) == {"ETag"}
    create = document["paths"]["/api/v1/webhooks"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert document["components"]["schemas"][create["$ref"].rsplit("/", 1)[1]]["required"] == ["name", "url",
                                                                                                 "events"]
    event = document["components"]["schemas"]["Event"]
    assert event["discriminator"]["propertyName"] == "type" and len(event["oneOf"]) == 11


def test_the_reference_page_is_for_administrators(app, client):
    """Anonymous visitors are sent to sign in; signed-in non-administrators get 403."""
    assert client.get(REFERENCE).status_code == 302
    make_user(app, "viewer@example.com", "viewer password", is_admin=False)
    sign_in(client, "viewer@example.com", "viewer password")
    assert client.get(REFERENCE).status_code == 403


@pytest.fixture
def reference(admin_client):
    response = admin_client.get(REFERENCE)
    assert response.status_code == 200
    return response


def test_the_reference_page_shows_every_operation_from_the_document(client, reference):
    """The page is rendered on the server from the document: each operation with its parameters, body and answers,
    the schemas it links to, and no script of its own (the policy's script-src 'self' holds)."""
    page = parse(reference)
    document = client.get(DOCUMENT).get_json()
    shown = set(texts(page, "section.reference-operation h2"))
    assert shown == {f"{method.upper()} {path}" for method, path in OPERATIONS}
    assert select_one(page, f"a[href='{DOCUMENT}']")
    for name in document["components"]["schemas"]:
        assert select_one(page, f"#schema-{name}")
    links = {a["href"] for a in select_all(page, "section.reference-operation a[href^='#schema-']")}
    assert "#schema-WebhookWithSecret" in links and "#schema-ErrorBody" in links
    patch = select_one(page, "#change_webhook")
    assert "Scope: `webhooks:write`" in patch.get_text()
    assert "If-Match" in texts(patch, "td code")
    assert [script["src"] for script in select_all(page, "script")] == [
        "/static/vendor/htmx-2.0.11.min.js", "/static/app.js"]
    assert "script-src 'self'" in reference.headers["Content-Security-Policy"]
