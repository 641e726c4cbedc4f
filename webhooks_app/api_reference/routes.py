"""The API reference for administrators: the OpenAPI document rendered as a page (no script, no CDN)."""

from flask import Blueprint, render_template

from ..api.openapi import openapi_document
from ..auth.routes import admin_area

bp = Blueprint("api_reference", __name__, url_prefix="/system/integrations/api/reference")
admin_area(bp)
METHOD_ORDER = ("get", "post", "patch", "put", "delete")


def ref_name(schema: dict) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def describe_type(schema: dict) -> list[tuple[str, str | None]]:
    """A schema as (text, link-to-component) parts: `array of Webhook`, `string (date-time) or null`, …"""
    if ref_name(schema):
        return [(ref_name(schema), ref_name(schema))]
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            parts = []
            for index, option in enumerate(schema[combinator]):
                parts += ([(" or ", None)] if index else []) + describe_type(option)
            return parts
    if "const" in schema:
        return [(f"“{schema['const']}”", None)]
    kind = schema.get("type", "any")
    if kind == "array":
        return [("array of ", None), *describe_type(schema.get("items", {}))]
    text = f"{kind} ({schema['format']})" if "format" in schema else str(kind)
    if "enum" in schema:
        text += ": " + ", ".join(str(value) for value in schema["enum"])
    return [(text, None)]


def limits(schema: dict) -> str:
    """The schema's bounds in words: 1–2147483647, at most 255 characters, at least 1 item."""
    words = []
    if "minimum" in schema or "maximum" in schema:
        words.append(f"{schema.get('minimum', '…')}–{schema.get('maximum', '…')}")
    if "maxLength" in schema:
        words.append(f"at most {schema['maxLength']} characters")
    if "minItems" in schema:
        words.append(f"at least {schema['minItems']} item{'s' if schema['minItems'] != 1 else ''}")
    if "default" in schema:
        words.append(f"default {str(schema['default']).lower()}")
    return "; ".join(words)


def operations(document: dict) -> list[dict]:
    """Every operation with its method and path, in path order then method order."""
    found = []
    for path, methods in sorted(document["paths"].items()):
        for method in sorted(methods, key=METHOD_ORDER.index):
            operation = methods[method]
            found.append({**operation, "method": method.upper(), "path": path,
                          "anchor": operation["operationId"]})
    return found


@bp.get("")
def index():
    """Every operation, parameter, body and answer of the API, and the schemas they use."""
    document = openapi_document()
    return render_template("api_reference/index.html", document=document, operations=operations(document),
                           schemas=document["components"]["schemas"], describe_type=describe_type,
                           limits=limits, ref_name=ref_name)
