"""Request parsing shared by the blueprints."""
import json
import re

from flask import request

from .errors import ApiError

ORDER_NUMBER = re.compile(r"ORD[0-9]{6,29}")
# A caller's X-Request-Id is kept when it is this: safe in a log line, a header and a column.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Removed from around a string field before it is checked: ASCII whitespace, exactly what
# the patterns in /openapi.json allow around a value (openapi.trimmed).
TRIM = " \t\n\r\x0b\x0c"


def json_object():
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "missing_body", "a JSON object body is required")
    try:  # json.loads itself: Flask's get_json lets RecursionError (deep nesting) through
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body_not_object", "the body must be a JSON object")
    return data


def string_field(data, name, max_len, required=True, pattern=None):
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", f"{name} must be a string")
    if len(value) > max_len:  # as sent, as the description's maxLength counts it
        raise ApiError(400, "invalid_field", f"{name} is longer than {max_len} characters")
    value = value.strip(TRIM)
    if required and not value:
        raise ApiError(400, "missing_field", f"{name} must not be empty")
    if not value.isprintable():
        raise ApiError(400, "invalid_field", f"{name} contains control characters")
    if pattern is not None and value and not pattern.fullmatch(value):
        raise ApiError(400, "invalid_field", f"{name} has an invalid format")
    return value


def order_number_or_404(value):
    """Order numbers in URLs: anything not shaped like ours is simply not found."""
    if not isinstance(value, str) or not ORDER_NUMBER.fullmatch(value):
        raise ApiError(404, "order_not_found", "no such order")
    return value


def client_ip():
    """The caller's address, for the limits, the logs and WeChat's spbill_create_ip: the
    socket's peer, or with TRUSTED_PROXY_COUNT the address our own proxies saw
    (ProxyFix, set up in create_app). Never the X-Forwarded-For entries a client wrote."""
    return (request.remote_addr or "127.0.0.1")[:45]


def query_arg(name):
    """A query parameter's value, None when absent; given twice it is a 400, not the first
    of two that may disagree."""
    values = request.args.getlist(name)
    if len(values) > 1:
        raise ApiError(400, "invalid_parameter", f"{name} is given more than once")
    return values[0] if values else None


def int_arg(name, default, lo, hi):
    """A whole-number query parameter in [lo, hi], or a 400 (ASCII digits only: '²' and
    '５' pass str.isdigit but are not numbers a client means). Empty is the default."""
    raw = query_arg(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or not lo <= int(raw) <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be a whole number from {lo} to {hi}")
    return int(raw)


def prefers_html():
    """Whether the caller would rather have a page than JSON (a browser on /admin)."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
