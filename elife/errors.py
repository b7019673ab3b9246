"""One shape for every error the API returns: {"error": {"code", "message"}}."""
import logging

from flask import jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

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


class ApiError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status, code, message, headers=None):
    resp = jsonify({"error": {"code": code, "message": message}})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def register_error_handlers(app):
    @app.errorhandler(ApiError)
    def _api_error(e):
        return error_response(e.status, e.code, e.message, e.headers)

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
        from .database import is_transient
        from .extensions import db
        db.session.rollback()
        if is_transient(e) or isinstance(e, OperationalError):
            log.warning("event=database_unavailable path=%s error=%s", request.path,
                        str(getattr(e, "orig", e)).splitlines()[0][:200])
            return error_response(503, "database_unavailable",
                                  "the database is unavailable for a moment; try again",
                                  {"Retry-After": "5"})
        log.exception("event=database_error path=%s", request.path)
        return error_response(500, "internal_error", "internal error; it has been logged")

    @app.errorhandler(Exception)
    def _unexpected(e):
        log.exception("event=unhandled_error path=%s", request.path)
        return error_response(500, "internal_error", "internal error; it has been logged")
