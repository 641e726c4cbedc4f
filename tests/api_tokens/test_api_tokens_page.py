"""The API tokens page: administrators create tokens shown once, stored hashed, and revoke them at once."""

import hashlib

import pytest
from conftest import csrf_token_from, make_user, sign_in
from markup import inherited, is_full_page, named, parse, root, select_all, select_one, text_of, texts
from sqlalchemy import func, select

from webhooks_app.extensions import db
from webhooks_app.models import ApiToken

BASE = "/system/integrations/api/tokens"
HTMX = {"HX-Request": "true"}
ASSET_CREATE = {"type": "asset.create", "assetId": 101, "userId": 1}


def create_token(admin_client, name: str = "DAM production", headers=None,
                 scopes=("events:write",)) -> tuple[str, str]:
    """Create a token through the form; returns the page answered and the token it shows."""
    data = {"name": name, "scopes": list(scopes), "csrf_token": admin_client.csrf_token}
    response = admin_client.post(BASE, data=data, headers=headers or {})
    assert response.status_code == 201, response.get_data(as_text=True)
    page = parse(response)
    return page, select_one(page, "textarea#new-api-token").get_text()


def token_rows(app) -> list[ApiToken]:
    with app.app_context():
        rows = list(db.session.scalars(select(ApiToken).order_by(ApiToken.id)))
        db.session.expunge_all()
        return rows


def token_cells(page, token_id: int) -> list[str]:
    """The texts of a token's row: name, prefix, scopes, created, last used, status and the Revoke cell."""
    return texts(page, f"tr#api-token-{token_id} td")


def post_event(client, token: str):
    return client.post("/api/v1/events", json=ASSET_CREATE, headers={"Authorization": f"Bearer {token}"})


def test_anonymous_visitors_are_sent_to_sign_in(client):
    """An anonymous visitor to the tokens page is redirected to sign-in, coming back afterwards."""
    response = client.get(BASE)
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")
    assert "tokens" in response.location


def test_non_administrators_are_refused(app, client):
    """A signed-in user without admin rights gets 403 on the page and cannot create a token."""
    make_user(app, "viewer@example.com", "viewer password", is_admin=False)
    assert sign_in(client, "viewer@example.com", "viewer password").status_code == 302
    response = client.get(BASE)
    assert response.status_code == 403
    assert "administrators only" in text_of(response)

    token = csrf_token_from(client, "/login")
    assert client.post(BASE, data={"name": "sneaky", "csrf_token": token}).status_code == 403
    assert token_rows(app) == []


def test_non_administrators_cannot_revoke(app, client):
    """A non-admin's revoke is refused with 403 and the token keeps working."""
    with app.app_context():
        from webhooks_app.services.api_tokens import create_api_token

        row, plaintext = create_api_token("DAM")
        db.session.commit()
        token_id = row.id
    make_user(app, "viewer@example.com", "viewer password", is_admin=False)
    sign_in(client, "viewer@example.com", "viewer password")
    csrf = csrf_token_from(client, "/login")
    assert client.post(f"{BASE}/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 403
    assert token_rows(app)[0].revoked_at is None
    assert post_event(app.test_client(), plaintext).status_code == 202


def test_administrators_see_the_page(admin_client):
    """An administrator sees the API tokens page with the form, an empty list and no caching allowed."""
    response = admin_client.get(BASE)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = parse(response)
    assert texts(page, "h1") == ["API tokens"]
    assert text_of(select_one(page, "label[for=name]")) == "Token name"
    assert named(page, "button", "Create token")["type"] == "submit"
    assert "No API tokens yet." in text_of(page)
    assert "/api/v1/events" in texts(page, ".page-header code")


def test_a_new_token_is_shown_once_and_then_only_its_prefix(app, client, admin_client):
    """Create answers 201 showing the whole token once; afterwards the list shows only its prefix."""
    page, token = create_token(admin_client)
    assert token.startswith("whk_") and len(token) > 40
    assert "will not be shown again" in text_of(page)
    [row] = token_rows(app)
    assert token_cells(page, row.id)[0] == "DAM production"

    listing = admin_client.get(BASE)
    assert listing.headers["Cache-Control"] == "no-store"
    assert token not in listing.get_data(as_text=True)
    assert "will not be shown again" not in text_of(listing)
    assert row.token_prefix == token[:10]
    name, prefix, scopes, _, last_used, status, _ = token_cells(listing, row.id)
    assert (name, prefix, scopes, last_used, status) == ("DAM production", f"{token[:10]}…", "events:write", "Never",
                                                         "Active")

    assert post_event(client, token).status_code == 202
    assert token_cells(admin_client.get(BASE), row.id)[4].endswith(" UTC")


def test_an_htmx_create_answers_with_the_fragment(admin_client):
    """Created through HTMX, the answer is the #api-tokens fragment with the token, not a whole page."""
    page, token = create_token(admin_client, headers=HTMX)
    assert root(page)["id"] == "api-tokens"
    assert not is_full_page(page)
    assert token.startswith("whk_")


@pytest.mark.parametrize("name", ["", "   "])
def test_a_token_needs_a_name(app, admin_client, name):
    """An empty or blank name answers 422 with "Enter a name for the token." and creates nothing."""
    response = admin_client.post(BASE, data={"name": name, "csrf_token": admin_client.csrf_token})
    assert response.status_code == 422
    page = parse(response)
    assert texts(page, "#name-errors li") == ["Enter a name for the token."]
    assert select_all(page, "#new-api-token") == []
    assert token_rows(app) == []


def test_a_name_over_255_characters_is_refused(app, admin_client):
    """A 256-character name answers 422 naming the limit and creates nothing."""
    response = admin_client.post(BASE, data={"name": "n" * 256, "csrf_token": admin_client.csrf_token})
    assert response.status_code == 422
    assert "at most 255 characters" in text_of(select_one(response, "#name-errors"))
    assert token_rows(app) == []


def test_create_without_csrf_is_refused(app, admin_client):
    """A create POST without the CSRF token is refused and creates nothing."""
    response = admin_client.post(BASE, data={"name": "DAM"})
    assert response.status_code == 400
    assert token_rows(app) == []


def test_tokens_are_stored_hashed(app, admin_client):
    """Only the token's SHA-256 and a short prefix are stored; the plaintext is in no column."""
    _, token = create_token(admin_client)
    [row] = token_rows(app)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in row.token_hash
    assert token not in row.token_prefix and len(row.token_prefix) < len(token)
    with app.app_context():
        stored = db.session.execute(select(ApiToken.__table__)).one()
        assert all(token not in str(value) for value in stored)


def test_revoke_stops_the_token_at_once(app, client, admin_client):
    """Revoke redirects back to the list, marks the token Revoked and the API answers 401 to it at once."""
    _, token = create_token(admin_client, name="DAM")
    _, other = create_token(admin_client, name="PIM")
    assert post_event(client, token).status_code == 202
    dam = next(row for row in token_rows(app) if row.name == "DAM")

    response = admin_client.post(f"{BASE}/{dam.id}/revoke", data={"csrf_token": admin_client.csrf_token})
    assert response.status_code == 302
    assert response.location == BASE

    refused = post_event(client, token)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert post_event(client, other).status_code == 202

    page = parse(admin_client.get(BASE))
    assert text_of(select_one(page, "#flash-region")) == "API token “DAM” revoked."
    assert token_cells(page, dam.id)[5:] == ["Revoked", ""]
    assert select_all(page, f"tr#api-token-{dam.id} a") == []
    pim = next(row for row in token_rows(app) if row.name == "PIM")
    assert select_one(page, f"tr#api-token-{pim.id} a")["aria-label"] == "Revoke PIM"
    assert next(row for row in token_rows(app) if row.name == "DAM").revoked_at is not None


def test_revoke_without_csrf_is_refused(app, client, admin_client):
    """A revoke POST without the CSRF token answers 400 and the token keeps working."""
    _, token = create_token(admin_client)
    [row] = token_rows(app)
    response = admin_client.post(f"{BASE}/{row.id}/revoke", data={})
    assert response.status_code == 400
    assert token_rows(app)[0].revoked_at is None
    assert post_event(client, token).status_code == 202


def test_revoking_an_unknown_token_is_404(app, admin_client):
    """Revoking a token id that does not exist answers 404."""
    response = admin_client.post(f"{BASE}/999999/revoke", data={"csrf_token": admin_client.csrf_token})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_revoke_asks_for_confirmation_in_the_apps_own_dialog(app, client, admin_client):
    """Revoke opens a confirmation dialog (no inline confirm()): GET changes nothing; confirming through HTMX
    closes it and redraws the list with the token Revoked; without JavaScript it is a page of its own."""
    _, token = create_token(admin_client, name="DAM")
    [row] = token_rows(app)
    page = parse(admin_client.get(BASE))
    assert select_all(page, "[onclick]") == []
    revoke = named(page, f"tr#api-token-{row.id} a", "Revoke")
    assert revoke["href"] == f"{BASE}/{row.id}/revoke" and inherited(revoke, "hx-target") == "#dialog-host"

    dialog = admin_client.get(f"{BASE}/{row.id}/revoke", headers=HTMX)
    assert (root(dialog).name, root(dialog)["id"]) == ("dialog", "api-token-revoke-dialog")
    assert text_of(select_one(dialog, "h2")) == "Revoke API token?" and "DAM" in text_of(dialog)
    assert not is_full_page(dialog)
    full_page = admin_client.get(f"{BASE}/{row.id}/revoke")
    assert is_full_page(full_page) and select_one(full_page, "main dialog#api-token-revoke-dialog")
    assert token_rows(app)[0].revoked_at is None and post_event(client, token).status_code == 202

    answer = admin_client.post(f"{BASE}/{row.id}/revoke", data={"csrf_token": admin_client.csrf_token}, headers=HTMX)
    body = parse(answer)
    assert answer.status_code == 200
    assert select_one(body, "#api-tokens")["hx-swap-oob"] == "true" and token_cells(body, row.id)[5] == "Revoked"
    assert text_of(select_one(body, "#flash-region")) == "API token “DAM” revoked." and not select_all(body, "dialog")
    assert post_event(client, token).status_code == 401
