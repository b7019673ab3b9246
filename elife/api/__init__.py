"""Everything HTTP: thin blueprints that parse and check the request, call a domain
module, and shape the answer; the error handlers that turn domain errors into statuses."""
from flask import request

from . import admin, auth, errors, health, openapi, orders, payment

BLUEPRINTS = (health.bp, openapi.bp, auth.bp, orders.bp, payment.bp, admin.bp)


def init_app(app):
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    errors.register_error_handlers(app)
    app.before_request(_reject_oversized_body)


def _reject_oversized_body():
    """413 from the declared length, before anything reads the body."""
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise errors.ApiError(413, "body_too_large", f"request body is larger than {limit} bytes")
