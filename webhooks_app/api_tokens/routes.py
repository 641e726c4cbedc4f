"""The API tokens page: tokens that let a system post events to /api/v1/events."""

from flask import Blueprint, abort, flash, redirect, url_for

from ..auth.routes import admin_area
from ..extensions import db
from ..htmx import render_page_or_fragment
from ..services import api_tokens as token_service
from ..webhooks.forms import ConfirmForm
from .forms import ApiTokenForm

bp = Blueprint("api_tokens", __name__, url_prefix="/system/integrations/api/tokens")
admin_area(bp)



@bp.route("", methods=["GET", "POST"])
def index():
    """List tokens and create one, showing it once."""
    form = ApiTokenForm()
    new_token = None
    status = 200
    if form.validate_on_submit():
        _, new_token = token_service.create_api_token(form.name.data)
        db.session.commit()
        form = ApiTokenForm(formdata=None)
        status = 201
    elif form.is_submitted():
        status = 422
    return render_page_or_fragment(
        "api_tokens/index.html", "api_tokens/_tokens.html", status=status,
        form=form, tokens=token_service.list_api_tokens(), new_token=new_token, confirm=ConfirmForm(),
    )


@bp.post("/<id:token_id>/revoke")
def revoke(token_id: int):
    """Revoke a token at once."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "The revoke request was not understood.")
    try:
        row = token_service.revoke_api_token(token_id)
    except token_service.ApiTokenNotFound:
        abort(404, f"API token {token_id} does not exist.")
    db.session.commit()
    flash(f"API token “{row.name}” revoked.", "success")
    return redirect(url_for("api_tokens.index"))


@bp.app_template_global()
def api_token_status(row) -> str:
    return "Revoked" if row.revoked_at else "Active"


