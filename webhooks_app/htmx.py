"""The one place that decides between a full page and an HTMX fragment, and how HTMX requests see errors.

A page's fragments are blocks of the page's own template (rendered alone with jinja2-fragments), so a page and
the pieces HTMX swaps into it are written once.
"""

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from jinja2_fragments.flask import render_block, render_blocks
from werkzeug.exceptions import HTTPException

# An HTMX request's error goes to the error region nearest before the element that made it: an open dialog's
# (templates/_dialog.html), else the page's (base.html). app.js lets htmx swap an error that names its target.
ERROR_TARGET = "previous .request-error, #request-error"


def is_htmx_request() -> bool:
    """True when HTMX (not a history restore) made this request."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def render_page_or_fragment(template: str, block: str, status: int = 200, **context):
    """Render the page's `block` alone for HTMX requests, else the whole page."""
    if is_htmx_request():
        return render_block(template, block, **context), status
    return render_template(template, **context), status


def render_out_of_band(template: str, blocks: list[str], **context) -> str:
    """Blocks of a page for HTMX to swap out of band (their root elements say hx-swap-oob), and the flashed
    messages: what a dialog that closes leaves behind."""
    return render_blocks(template, blocks, oob=True, **context) + render_template("_flashes.html", oob=True)


def render_error(error: HTTPException):
    """The error page, or for an HTMX request the error as a fragment retargeted at an error region."""
    if not is_htmx_request():
        return render_template("errors/error.html", error=error), error.code
    fragment = render_block("errors/error.html", "request_error", error=error,
                            session_expired=isinstance(error, CSRFError))
    return fragment, error.code, {"HX-Retarget": ERROR_TARGET, "HX-Reswap": "innerHTML show:top"}
