"""What HTMX requests get (webhooks_app/htmx.py): a page's block alone, and errors as fragments aimed at an error
region instead of whole error pages."""

import pytest
from markup import is_full_page, parse, root, select_one, text_of

BASE = "/system/integrations/api/webhooks"
HTMX = {"HX-Request": "true"}
MISSING = "The request failed (HTTP 404): Webhook 2147483647 does not exist; it may have been deleted. Reload the " \
          "page to see the current list."


def test_an_htmx_error_is_a_fragment_aimed_at_the_nearest_error_region(admin_client):
    """A 404 answered to HTMX is a one-line fragment, not the error page: HX-Retarget names the error region nearest
    before the element that asked (an open dialog's, else the page's) and the page's region gets it out of band."""
    response = admin_client.get(f"{BASE}/2147483647/edit", headers=HTMX)
    assert response.status_code == 404 and not is_full_page(response)
    assert response.headers["HX-Retarget"] == "previous .request-error, #request-error"
    assert response.headers["HX-Reswap"].split()[0] == "innerHTML"
    body = parse(response)
    assert (root(body).name, text_of(root(body))) == ("p", MISSING)
    page_region = select_one(body, "#request-error")
    assert page_region["hx-swap-oob"] == "innerHTML" and text_of(page_region) == MISSING


def test_a_plain_request_gets_the_error_page(admin_client):
    """Without HTMX the same error is the whole error page, with no HTMX headers."""
    page = admin_client.get(f"{BASE}/2147483647/edit")
    assert page.status_code == 404 and is_full_page(page) and "HX-Retarget" not in page.headers
    assert text_of(select_one(page, "main h1")) == "404 · Not Found"


def test_a_refused_csrf_token_says_the_session_expired(admin_client):
    """An HTMX change without a valid CSRF token (an old page's) is a 400 that says to reload the page."""
    response = admin_client.post(f"{BASE}/new", headers={**HTMX, "X-CSRFToken": "stale"}, data={"name": "x"})
    assert response.status_code == 400
    assert text_of(root(response)) == "Your session expired. Reload the page and try again."


@pytest.mark.parametrize("path", ["new", "{id}/edit", "{id}/delete", "{id}/reset-secret"])
def test_every_dialog_has_its_error_region(admin_client, path):
    """Each dialog carries an empty role=alert region right under its heading, where a failed request says why."""
    created = admin_client.post(f"{BASE}/new", headers=HTMX, data={
        "name": "Hook", "url": "https://hooks.example.com/x", "events": ["asset.create"],
        "csrf_token": admin_client.csrf_token})
    webhook_id = select_one(created, "[id^=test-result-]")["id"].removeprefix("test-result-")
    dialog = root(admin_client.get(f"{BASE}/{path.format(id=webhook_id)}", headers=HTMX))
    region = dialog.find("header").find_next_sibling()
    assert region["class"] == ["request-error"] and region["role"] == "alert" and region.contents == []


def test_a_history_restore_gets_the_whole_page(admin_client):
    """htmx restoring history (HX-History-Restore-Request) gets the whole page, never the block it would swap."""
    response = admin_client.get(BASE, headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert is_full_page(response) and select_one(response, "main #webhooks-table")
