"""One shape for every error the API returns: {"error": {"code", "message"}} (and
"details" for the few errors that carry data, such as price_changed), and the one place
that says which HTTP status each domain error is."""
import logging

from flask import jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from .. import errors as domain
from ..logs import escape

log = logging.getLogger("elife.errors")

# Stable codes for the HTTP errors Flask/Werkzeug raise on their own.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
}


# The status of a domain error: by its code where that differs from its kind's.
STATUS_BY_KIND = {
    domain.Invalid: 400,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.RateLimited: 429,
    domain.Unavailable: 503,
}
STATUS_BY_CODE = {
    "idempotency_key_reused": 422,  # the key was sent with another body (as Stripe answers)
    "wechat_unavailable": 502,      # the gateway in front of the payment failed
    "wechat_rejected": 502,
    "bill_unreadable": 502,         # WeChat's bill came, not in its format
    "price_unavailable": 409,       # a PricingError: this product, not the request
    "no_exchange_rate": 503,        # a PricingError: our configuration
}


class ApiError(Exception):
    def __init__(self, status, code, message, headers=None, details=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details


def from_domain(e):
    """The ApiError a domain error is answered with."""
    status = STATUS_BY_CODE.get(e.code)
    if status is None:
        status = next((v for k, v in STATUS_BY_KIND.items() if isinstance(e, k)), 400)
    headers = {"Retry-After": str(e.retry_after)} if e.retry_after is not None else None
    return ApiError(status, e.code, e.message, headers, e.details)


def error_response(status, code, message, headers=None, details=None):
    error = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    resp = jsonify({"error": error})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def register_error_handlers(app):
    @app.errorhandler(ApiError)
    def _api_error(e):
        return error_response(e.status, e.code, e.message, e.headers, e.details)

    @app.errorhandler(domain.DomainError)
    def _domain_error(e):
        return _api_error(from_domain(e))

    @app.errorhandler(HTTPException)
    def _http_error(e):
        code = HTTP_CODES.get(e.code, "http_error")
        headers = {}
        if e.code == 405 and e.valid_methods:
            headers["Allow"] = ", ".join(sorted(e.valid_methods))
        message = {
            404: f"no such path: {request.path}",
            405: f"{request.method} is not allowed here",
            413: "request body is too large",
        }.get(e.code, e.description or e.name)
        return error_response(e.code, code, message, headers)

    @app.errorhandler(DBAPIError)
    def _database_error(e):
        from ..database import is_transient
        from ..extensions import db
        db.session.rollback()
        if is_transient(e) or isinstance(e, OperationalError):
            log.warning("event=database_unavailable path=%s error=%s", escape(request.path),
                        escape(str(getattr(e, "orig", e))[:200]))
            return error_response(503, "database_unavailable",
                                  "the database is unavailable for a moment; try again",
                                  {"Retry-After": "5"})
        log.exception("event=database_error path=%s", escape(request.path))
        return error_response(500, "internal_error", "internal error; it has been logged")

    @app.errorhandler(Exception)
    def _unexpected(e):
        log.exception("event=unhandled_error path=%s", escape(request.path))
        return error_response(500, "internal_error", "internal error; it has been logged")
