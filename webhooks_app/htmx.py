"""The one place that decides between a full page and an HTMX fragment."""

from flask import render_template, request


def is_htmx_request() -> bool:
    """True when HTMX (not a history restore) made this request."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def render_page_or_fragment(page_template: str, fragment_template: str, status: int = 200, **context):
    """Render the fragment for HTMX requests, else the page that includes it."""
    template = fragment_template if is_htmx_request() else page_template
    return render_template(template, **context), status
