"""Everything HTTP: thin blueprints that parse and check the request, call a domain
module, and shape the answer; the error handlers that turn domain errors into statuses."""
import uuid

from flask import g, request

from .. import logs, metrics
from . import admin, auth, errors, health, jobs, notifications, openapi, orders, payment
from . import scrape
from .common import SANE_REQUEST_ID

BLUEPRINTS = (health.bp, openapi.bp, scrape.bp, auth.bp, orders.bp, notifications.bp, payment.bp, admin.bp, jobs.bp)
REQUEST_ID_HEADER = "X-Request-Id"


def init_app(app):
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    errors.register_error_handlers(app)
    app.before_request(_request_id)  # first: every line the request logs carries it
    app.before_request(_reject_oversized_body)
    app.after_request(_answer_request_id)
    app.teardown_request(_forget_request_id)
    metrics.init()


def _request_id():
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    logs.set_request_id(g.request_id)


def _answer_request_id(resp):
    rid = g.get("request_id")
    if rid:
        resp.headers[REQUEST_ID_HEADER] = rid
    metrics.http_request(request.url_rule.rule if request.url_rule else None, resp.status_code)
    return resp


def _forget_request_id(_exc=None):
    logs.set_request_id(None)


def _reject_oversized_body():
    """413 from the declared length, before anything reads the body."""
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise errors.ApiError(413, "body_too_large", f"request body is larger than {limit} bytes")
