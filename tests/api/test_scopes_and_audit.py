"""Token scopes (events:write, webhooks:read, webhooks:write) and the audit log of management calls."""

import pytest
from api.helpers import ASSET_CREATE, assert_error, post_event
from api.management import GOOD_WEBHOOK, MESSAGES, WEBHOOKS, audit_entries, call, create, scoped_token
from markup import parse, select_all, select_one, texts
from sqlalchemy import select, text

from webhooks_app.extensions import db
from webhooks_app.models import ApiToken, Webhook
from webhooks_app.services.api_tokens import create_api_token, revoke_api_token

TOKENS_PAGE = "/system/integrations/api/tokens"


@pytest.mark.parametrize(("scopes", "method", "path", "missing"), [
    (("events:write",), "GET", WEBHOOKS, "webhooks:read"),
    (("events:write",), "GET", MESSAGES, "webhooks:read"),
    (("events:write", "webhooks:read"), "POST", WEBHOOKS, "webhooks:write"),
    (("webhooks:write",), "GET", WEBHOOKS, "webhooks:read"),
    (("webhooks:read", "webhooks:write"), "POST", "/api/v1/events", "events:write"),
], ids=["events-token-reads", "events-token-reads-log", "reader-writes", "writer-reads", "manager-posts-events"])
def test_a_token_without_the_scope_gets_403_naming_it(app, client, scopes, method, path, missing):
    """Each call needs one scope; a live token without it is refused with 403 whose message names the scope, and
    nothing is stored."""
    token = scoped_token(app, scopes)
    body = GOOD_WEBHOOK if path == WEBHOOKS else ASSET_CREATE
    message = assert_error(call(client, method, path, token, json=body if method == "POST" else None), 403, "scope")
    assert missing in message
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Webhook)) == 0


def test_each_scope_opens_its_calls(app, client):
    """events:write posts events, webhooks:read reads webhooks and the log, webhooks:write changes webhooks."""
    writer = scoped_token(app, ("webhooks:write",))
    reader = scoped_token(app, ("webhooks:read",))
    poster = scoped_token(app, ("events:write",))
    webhook_id = create(client, writer).get_json()["id"]
    assert call(client, "GET", f"{WEBHOOKS}/{webhook_id}", reader).status_code == 200
    assert call(client, "GET", f"{WEBHOOKS}/{webhook_id}/messages", reader).status_code == 200
    assert post_event(client, poster, ASSET_CREATE).get_json()["messages"] == 1
    assert call(client, "POST", f"{WEBHOOKS}/{webhook_id}/reset-secret", writer).status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer whk_unknown", "Basic dXNlcjpwYXNz", "Bearer "])
def test_calls_without_a_live_token_are_401(app, client, header):
    """No token, an unknown one or another scheme answers 401 with WWW-Authenticate; nothing is audited."""
    response = client.get(WEBHOOKS, headers={"Authorization": header} if header else {})
    assert_error(response, 401, "Authorization")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert audit_entries(app) == []


def test_a_revoked_token_stops_managing_at_once(app, client):
    """After revoke, the token's management calls are 401."""
    token = scoped_token(app)
    assert call(client, "GET", WEBHOOKS, token).status_code == 200
    with app.app_context():
        revoke_api_token(db.session.scalar(select(ApiToken.id)))
        db.session.commit()
    assert_error(call(client, "GET", WEBHOOKS, token), 401, "Authorization")


def test_writes_and_scope_refusals_are_audited_with_the_tokens_name(app, client):
    """Each write is audited (token name, method and path, status, what it did or why it was refused), in the same
    transaction as the change; a refusal for a missing scope is audited too; successful reads are not."""
    token = scoped_token(app, name="Nightly sync")
    reader = scoped_token(app, ("webhooks:read",), name="Dashboard")
    created = create(client, token)
    webhook_id = created.get_json()["id"]
    call(client, "GET", f"{WEBHOOKS}/{webhook_id}", token)
    call(client, "POST", WEBHOOKS, token, json={**GOOD_WEBHOOK, "url": "http://plain.example.com/"})
    call(client, "PATCH", f"{WEBHOOKS}/{webhook_id}", token, json={"name": "Renamed"},
         headers={"If-Match": created.headers["ETag"]})
    call(client, "DELETE", f"{WEBHOOKS}/{webhook_id}", reader)
    call(client, "DELETE", f"{WEBHOOKS}/{webhook_id}", token)
    path = f"{WEBHOOKS}/{webhook_id}"
    assert audit_entries(app) == [
        ("Nightly sync", "POST", WEBHOOKS, 201, f"created webhook {webhook_id} “Asset sync”"),
        ("Nightly sync", "POST", WEBHOOKS, 422,
         "refused: HTTPS is required: the endpoint URL must start with https://."),
        ("Nightly sync", "PATCH", path, 200, f"changed webhook {webhook_id} (name)"),
        ("Dashboard", "DELETE", path, 403, "refused: this API token does not have the webhooks:write scope; create a "
                                           "token with it on the API tokens page or with `flask create-api-token "
                                           "--scope webhooks:write`"),
        ("Nightly sync", "DELETE", path, 204, f"deleted webhook {webhook_id} “Renamed”"),
    ]


def test_the_api_tokens_page_shows_the_audit_newest_first(app, client, admin_client):
    """The API tokens page lists the management calls newest first: when, which token, the call and its outcome."""
    token = scoped_token(app, name="Nightly sync")
    webhook_id = create(client, token).get_json()["id"]
    call(client, "POST", f"{WEBHOOKS}/{webhook_id}/reset-secret", token)
    page = parse(admin_client.get(TOKENS_PAGE))
    rows = select_all(page, "#api-audit tbody tr")
    assert len(rows) == 2
    cells = [td.get_text(" ", strip=True) for td in rows[0].select("td")]
    assert cells[1:] == ["Nightly sync", f"POST {WEBHOOKS}/{webhook_id}/reset-secret",
                         f"200 reset the secret of webhook {webhook_id}"]
    assert "secret" not in cells[3].replace("the secret of", "")  # the new secret itself is never logged
    assert select_one(rows[0], "time")["datetime"].endswith("Z")


def test_the_audit_list_pages_by_50(app, client, admin_client):
    """With more than 50 entries the page shows the newest 50 and an Older link to the rest."""
    token = scoped_token(app)
    for _ in range(51):
        call(client, "POST", WEBHOOKS, token, json={**GOOD_WEBHOOK, "name": ""})
    page = parse(admin_client.get(TOKENS_PAGE))
    assert len(select_all(page, "#api-audit tbody tr")) == 50
    older = parse(admin_client.get(select_one(page, "#api-audit nav a")["href"]))
    assert len(select_all(older, "#api-audit tbody tr")) == 1
    assert texts(older, "#api-audit nav a") == ["Newest"]
    assert admin_client.get(f"{TOKENS_PAGE}?audit_before=0").status_code == 400


def test_scopes_are_chosen_on_the_tokens_page(app, admin_client):
    """The create form offers the three scopes as checkboxes (events:write checked by default); the token gets the
    scopes chosen and the list shows them; none chosen is 422 and creates nothing."""
    page = parse(admin_client.get(TOKENS_PAGE))
    boxes = {box["value"]: box.has_attr("checked") for box in select_all(page, "input[name=scopes]")}
    assert boxes == {"events:write": True, "webhooks:read": False, "webhooks:write": False}
    response = admin_client.post(TOKENS_PAGE, data={"name": "Ops", "scopes": ["webhooks:read", "webhooks:write"],
                                                    "csrf_token": admin_client.csrf_token})
    assert response.status_code == 201
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        assert row.scope_list == ["webhooks:read", "webhooks:write"]
        token_id = row.id
    assert texts(parse(response), f"tr#api-token-{token_id} .badge") == ["webhooks:read", "webhooks:write"]
    refused = admin_client.post(TOKENS_PAGE, data={"name": "None", "csrf_token": admin_client.csrf_token})
    assert refused.status_code == 422
    assert texts(parse(refused), "#scopes-errors li") == ["Choose at least one scope."]
    bogus = admin_client.post(TOKENS_PAGE, data={"name": "Bogus", "scopes": ["admin:all"],
                                                 "csrf_token": admin_client.csrf_token})
    assert bogus.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(ApiToken)) == 1


def test_the_cli_takes_repeatable_scopes(app, client):
    """`flask create-api-token NAME --scope …` (repeatable) gives the token those scopes; without --scope it gets
    events:write; an unknown scope is refused naming the choices."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-api-token", "Ops", "--scope", "webhooks:read", "--scope", "webhooks:write"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert call(client, "GET", WEBHOOKS, token).status_code == 200
    assert_error(post_event(client, token, ASSET_CREATE), 403, "scope")
    default = runner.invoke(args=["create-api-token", "DAM"]).output.strip()
    assert post_event(client, default, ASSET_CREATE).status_code == 202
    assert_error(call(client, "GET", WEBHOOKS, default), 403, "scope")
    refused = runner.invoke(args=["create-api-token", "X", "--scope", "admin"])
    assert refused.exit_code != 0 and "webhooks:read" in refused.output
    with app.app_context():
        assert sorted(db.session.scalars(select(ApiToken.scopes))) == ["events:write", "webhooks:read webhooks:write"]


def test_tokens_made_before_scopes_keep_exactly_events_write(app, client):
    """Migration 0011 gives every existing token the events:write scope and no other: it still posts events and
    cannot manage webhooks."""
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        db.session.remove()
        downgrade(revision="0012_log_search")
        try:
            with db.engine.begin() as connection:
                connection.execute(text("INSERT INTO api_tokens (name, token_hash, token_prefix, created_at) "
                                        "VALUES ('old', :hash, 'whk_old', CURRENT_TIMESTAMP)"),
                                   {"hash": "0" * 64})
        finally:
            upgrade()
        assert db.session.execute(select(ApiToken.name, ApiToken.scopes)).all() == [("old", "events:write")]
        _, token = create_api_token("new")
        db.session.commit()
        db.session.remove()
    assert post_event(client, token, ASSET_CREATE).status_code == 202
