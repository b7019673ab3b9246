"""What the path groups share: error responses, bodies, query parameters, patterns, and
the parameter and headers every operation carries."""
import re

from .. import common
from ..common import SANE_REQUEST_ID

# -- error codes, by where they come from --------------------------------------------------
BODY_ERRORS = ["missing_body", "malformed_json", "body_not_object"]      # common.json_object
FIELD_ERRORS = ["missing_field", "invalid_field"]                         # common.string_field
CUSTOMER_401 = ["missing_token", "invalid_token", "token_expired", "invalid_openid"]  # auth.current_user


def _anchored(regex):
    """Python's fullmatch() pattern as an OpenAPI (ECMA-262, unanchored) pattern."""
    return f"^{regex.pattern}$" if "|" not in regex.pattern else f"^(?:{regex.pattern})$"


def _error(description, codes, headers=None, html=False, details=None):
    """A JSON error response whose `error.code` is one of `codes` (and, for the codes that
    carry data, `error.details` as `details` describes)."""
    properties = {"code": {"type": "string", "enum": list(codes)}, "message": {"type": "string"}}
    if details is not None:
        properties["details"] = details
    schema = {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": properties,
        }},
    }
    resp = {"description": description, "content": {"application/json": {"schema": schema}}}
    if html:
        resp["content"]["text/html"] = {"schema": {"type": "string"}}
    if headers:
        resp["headers"] = headers
    return resp


def _retry_after(what):
    return {"Retry-After": {"description": what, "schema": {"type": "integer", "minimum": 1}}}


def _json(description, schema):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _common(limit_bytes, *, body=False, database=True, limited=False):
    """The responses many operations share: 413, 429, 503."""
    out = {}
    if body:
        out["413"] = _error(f"the body is larger than {limit_bytes} bytes (refused before it is read)",
                            ["body_too_large"])
    if limited:
        out["429"] = _error("over an abuse limit (shared by every worker and host)", ["rate_limited"],
                            _retry_after("seconds until the limit's window ends"))
    if database:
        out["503"] = _error("the database is unavailable for a moment", ["database_unavailable"],
                            _retry_after("seconds to wait before trying again"))
    return out


def _json_body(ref, description, required=True):
    return {"required": required, "description": description,
            "content": {"application/json": {"schema": {"$ref": ref}}}}


def _form_body(properties, required=()):
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return {"required": bool(required),
            "content": {"application/x-www-form-urlencoded": {"schema": schema},
                        "multipart/form-data": {"schema": schema}}}


def _customer_security(settings):
    return [{"bearerAuth": []}] + ([{"wxOpenid": []}] if settings.TRUST_WX_HEADERS else [])


def _order_number_param():
    return {
        "name": "orderNumber", "in": "path", "required": True,
        "description": "anything not shaped like an order number is a 404 order_not_found",
        "schema": {"type": "string", "pattern": _anchored(common.ORDER_NUMBER)},
    }


# The one answer that is not JSON: gunicorn's own page, for a request the app never sees.
GUNICORN_ERRORS = {
    "414": {"description": "the request line (method, path and query) is longer than gunicorn's "
                           "limit_request_line (4094 bytes): gunicorn's own HTML page, not JSON",
            "content": {"text/html": {"schema": {"type": "string"}}}},
    "431": {"description": "more than 100 headers, or one longer than 8190 bytes (gunicorn's "
                           "limit_request_fields, limit_request_field_size): gunicorn's own HTML page, "
                           "not JSON",
            "content": {"text/html": {"schema": {"type": "string"}}}},
}


ONCE = " Given at most once (twice is a 400 invalid_parameter)."
EMPTY_IS_DEFAULT = " An empty value is the default." + ONCE


def _query(name, description, schema, empty=False):
    """A query parameter as common.query_arg reads it: once; `empty`: an empty value is
    taken as if the parameter were absent (OpenAPI's allowEmptyValue)."""
    p = {"name": name, "in": "query", "required": False, "schema": schema,
         "description": description + (EMPTY_IS_DEFAULT if empty else ONCE)}
    if empty:
        p["allowEmptyValue"] = True
    return p


# What common.string_field removes around a value before checking it, as a class.
_TRIM = "[" + "".join(f"\\x{ord(c):02x}" for c in common.TRIM) + "]"


def trimmed(core):
    """The pattern of a string field: `core` (a regex, or a compiled one), with the
    ASCII whitespace string_field removes allowed around it."""
    core = getattr(core, "pattern", core)
    return f"^{_TRIM}*(?:{core}){_TRIM}*$"


def _one_of(words):
    return "|".join(re.escape(w) for w in words)


REQUEST_ID_PARAM = {
    "name": "X-Request-Id", "in": "header", "required": False,
    "description": ("the caller's id for this request: echoed in the answer, on every log line "
                    "(req=<id>) and on the audit rows of the WeChat and Unitel calls it makes, when it "
                    "is 1-64 of A-Z a-z 0-9 . _ -; anything else is replaced by a new one"),
    # Tolerant on purpose: any other value is not refused, it is replaced by a new id.
    "schema": {"type": "string"},
}
REQUEST_ID_HEADER = {
    "description": "the request's id: the caller's X-Request-Id when sane, else a new one (32 hex digits)",
    "schema": {"type": "string", "pattern": _anchored(SANE_REQUEST_ID)},
}
