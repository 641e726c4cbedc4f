"""App-wide guards: security headers on every response, and no text a database column cannot hold."""

from flask import Flask, Response, abort, current_app, request

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

# The pages load their scripts and styles from /static only and htmx never evaluates code (allowEval is
# off in base.html), so nothing inline and no eval is allowed. No page may be framed (clickjacking of the
# Reset secret or Delete confirmations).
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "object-src 'none'",
    "frame-ancestors 'none'",
])
HSTS_MAX_AGE_SECONDS = 365 * 24 * 3600


def add_security_headers(response: Response) -> Response:
    """Set the policy headers on every response: pages, fragments, errors, static files and JSON."""
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        # Only behind HTTPS: browsers then refuse plain HTTP to this host for a year.
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_SECONDS}"
    return response


def refuse_nul_characters() -> None:
    """400 for a query or form value holding NUL, which PostgreSQL text columns cannot store.

    The events API is left to read its JSON body itself, within its own size limit.
    """
    sources = [("query", request.args)]
    if request.mimetype in FORM_TYPES and request.blueprint != "api":
        sources.append(("form", request.form))
    for where, values in sources:
        for name, items in values.lists():
            if "\x00" in name or any("\x00" in item for item in items):
                abort(400, f"The {where} field “{name.replace(chr(0), '')}” contains a NUL character, "
                           "which is not allowed.")


def install_hardening(app: Flask) -> None:
    """Attach the guards to every request and response of `app`."""
    app.before_request(refuse_nul_characters)
    app.after_request(add_security_headers)
