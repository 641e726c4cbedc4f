"""The API tokens page: tokens that let a system post events or manage webhooks, and the audit of their calls."""

from flask import Blueprint, abort, flash, redirect, request, url_for

from ..auth.routes import admin_area
from ..extensions import db
from ..htmx import is_htmx_request, render_out_of_band, render_page_or_fragment
from ..ids import MAX_DATABASE_ID
from ..models import ApiToken
from ..redis_status import redis_is_available
from ..services import api_tokens as token_service
from ..services.api_audit import AUDIT_PAGE_SIZE, recent_calls
from ..webhooks.forms import ConfirmForm
from .forms import ApiTokenForm

bp = Blueprint("api_tokens", __name__, url_prefix="/system/integrations/api/tokens")
admin_area(bp)
PAGE = "api_tokens/index.html"


@bp.route("", methods=["GET", "POST"])
def index():
    """List tokens and create one, showing it once."""
    form = ApiTokenForm()
    new_token = None
    status = 200
    if form.validate_on_submit():
        _, new_token = token_service.create_api_token(form.name.data, form.scopes.data)
        db.session.commit()
        form = ApiTokenForm(formdata=None)
        status = 201
    elif form.is_submitted():
        status = 422
    return render_page_or_fragment(PAGE, "tokens", status=status, form=form, tokens=token_service.list_api_tokens(),
                                   new_token=new_token, redis_available=redis_is_available(),
                                   audit=audit_page())


def audit_page() -> dict:
    """The newest management calls, or those older than ?audit_before= (a keyset page of AUDIT_PAGE_SIZE)."""
    before = request.args.get("audit_before", type=int)
    if before is not None and not 1 <= before <= MAX_DATABASE_ID:
        abort(400, "audit_before must be an audit entry id.")
    entries = recent_calls(before, AUDIT_PAGE_SIZE + 1)
    return {"entries": entries[:AUDIT_PAGE_SIZE], "older": entries[AUDIT_PAGE_SIZE - 1].id
            if len(entries) > AUDIT_PAGE_SIZE else None, "paged": before is not None}


@bp.route("/<id:token_id>/revoke", methods=["GET", "POST"])
def revoke(token_id: int):
    """Ask for confirmation, then revoke a token at once."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404, f"API token {token_id} does not exist.")
    form = ConfirmForm()
    if not form.is_submitted():
        return render_page_or_fragment("api_tokens/revoke.html", "content", token=token)
    if not form.validate():
        abort(400, "The revoke request was not understood.")
    row = token_service.revoke_api_token(token_id)
    db.session.commit()
    flash(f"API token “{row.name}” revoked.", "success")
    if is_htmx_request():
        return render_out_of_band(PAGE, ["tokens"], form=ApiTokenForm(formdata=None),
                                  tokens=token_service.list_api_tokens())
    return redirect(url_for("api_tokens.index"))


@bp.app_template_global()
def api_token_status(row) -> str:
    return "Revoked" if row.revoked_at else "Active"


