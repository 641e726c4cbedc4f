"""Every response carries the anti-framing, CSP and other security headers; templates need no inline code."""

import json
import re
from pathlib import Path

import pytest
from conftest import csrf_token_from
from markup import select_one

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
BASE = "/system/integrations/api"


def directives(response) -> dict[str, str]:
    policy = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def assert_secured(response, what: str) -> None:
    policy = directives(response)
    assert policy.get("frame-ancestors") == "frame-ancestors 'none'", what
    assert policy.get("script-src") == "script-src 'self'", what
    for name in ("default-src", "style-src", "img-src", "connect-src", "form-action", "base-uri", "object-src"):
        assert name in policy, f"{what}: no {name}"
    assert "unsafe" not in response.headers["Content-Security-Policy"], what
    assert response.headers.get("X-Frame-Options") == "DENY", what
    assert response.headers.get("X-Content-Type-Options") == "nosniff", what
    assert response.headers.get("Referrer-Policy") == "same-origin", what
    assert "Strict-Transport-Security" not in response.headers, what


def test_pages_fragments_redirects_and_json_carry_the_headers(app, admin_client):
    """Full pages, HTMX fragments, 204 polls, redirects and JSON all carry CSP, X-Frame-Options DENY, nosniff and
    Referrer-Policy same-origin (a same-site page could iframe the Reset secret confirmation before)."""
    webhook = admin_client.post(f"{BASE}/webhooks/new", headers={"HX-Request": "true"}, data={
        "name": "Framed", "url": "https://hooks.example.com/x", "events": ["asset.create"],
        "csrf_token": admin_client.csrf_token})
    webhook_id = select_one(webhook, "[id^=test-result-]")["id"].removeprefix("test-result-")
    requests = {
        "reset secret page": (f"{BASE}/webhooks/{webhook_id}/reset-secret", {}),
        "reset secret fragment": (f"{BASE}/webhooks/{webhook_id}/reset-secret", {"HX-Request": "true"}),
        "webhooks page": (f"{BASE}/webhooks", {}),
        "activity page": (f"{BASE}/activity", {}),
        "API tokens page": (f"{BASE}/tokens", {}),
        "live poll 204": (f"{BASE}/webhooks/live?state=x", {"HX-Request": "true"}),
        "healthz JSON": ("/healthz", {}),
        "index redirect": ("/", {}),
    }
    for what, (path, headers) in requests.items():
        assert_secured(admin_client.get(path, headers=headers), what)
    assert_secured(webhook, "secret dialog fragment (201)")


def test_error_pages_and_static_files_carry_the_headers(app, client):
    """404, 405, CSRF 400, 401 JSON from the API, a redirect to sign-in and static files carry the headers too."""
    csrf_token_from(client)
    responses = {
        "404": client.get("/nowhere"),
        "405": client.put("/login"),
        "CSRF 400": client.post("/login", data={"email": "a@example.com", "password": "x"}),
        "API 401": client.post("/api/v1/events", json={}),
        "sign-in redirect": client.get(f"{BASE}/webhooks"),
        "sign-in page": client.get("/login"),
        "app.js": client.get("/static/app.js"),
        "htmx": client.get("/static/vendor/htmx-2.0.11.min.js"),
        "app.css": client.get("/static/app.css"),
    }
    for what, response in responses.items():
        assert_secured(response, what)
        response.close()


def test_an_unexpected_error_page_carries_the_headers(app, monkeypatch):
    """The 500 page Flask renders for an unhandled exception carries the headers as well."""
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    with app.test_request_context("/system/integrations/api/webhooks"):
        response = app.handle_exception(RuntimeError("an unexpected failure"))
    assert response.status_code == 500
    assert_secured(response, "500")


def test_strict_transport_security_is_sent_when_cookies_are_https_only(app, client, monkeypatch):
    """With SESSION_COOKIE_SECURE on (behind HTTPS), every response also carries Strict-Transport-Security."""
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    for path in ("/login", "/static/app.css", "/nowhere"):
        assert client.get(path).headers.get("Strict-Transport-Security") == "max-age=31536000"


INLINE_CODE = {
    "inline <script>": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "<style> element": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "inline event handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
    "hx-on (needs eval)": re.compile(r"\bhx-on\b|\bhx-on:", re.I),
    "hx-vars or js: values (need eval)": re.compile(r"hx-vars|hx-vals\s*=\s*['\"]\s*js:", re.I),
    "hx-trigger filter (needs eval)": re.compile(r"hx-trigger\s*=\s*\"[^\"]*\[", re.I),
}


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")),
                         ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_templates_carry_no_code_the_policy_would_block(template):
    """No template holds inline script, style, event handlers or htmx expressions that need eval: the policy
    (script-src 'self', style-src 'self', htmx allowEval false) would block them."""
    text = template.read_text()
    found = [what for what, pattern in INLINE_CODE.items() if pattern.search(text)]
    assert found == []


def test_htmx_is_configured_never_to_evaluate_code_or_inject_styles(client):
    """The htmx-config meta turns eval, script tags in responses and the injected indicator <style> off."""
    config = json.loads(select_one(client.get("/login"), "meta[name=htmx-config]")["content"])
    assert (config["allowEval"], config["allowScriptTags"], config["includeIndicatorStyles"]) == (False, False, False)
