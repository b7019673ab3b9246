"""The OpenAPI 3.0 description of the HTTP API, served at GET /openapi.json.

It is built from the constants the code checks with -- the patterns in api/orders.py and
api/common.py, the supported operators and recharge types, the states in models.py and
the body limit in the settings -- so that a changed rule changes the description too.
tests/test_openapi.py checks that its paths are exactly the app's routes; tests/test_fuzz.py
checks that every status and error code the service answers is one described here.

Error codes are listed per operation and status (an `enum` on `error.code`), in the order
the code checks them.

One module per group of paths, each beside the blueprints it describes: meta (/health,
/openapi.json, /metrics), customer (auth, products, orders), payment (/payment/*), admin
(/admin/*) and admin_catalogue (the rate and the catalogue); schemas holds the components,
parts what they share. Here they are assembled, and given what every operation has.
"""

from flask import Blueprint, jsonify

from ... import config
from ...shop import catalog
from . import admin, admin_catalogue, customer, jobs, meta, payment
from .parts import GUNICORN_ERRORS, REQUEST_ID_HEADER, REQUEST_ID_PARAM, _error
from .parts import trimmed  # noqa: F401 (the tests import it from here)
from .schemas import components

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1.0.0"

# The groups of paths, in the order the document lists them.
PATH_GROUPS = (meta.probes, customer.paths, payment.paths, admin.paths, admin_catalogue.paths, jobs.paths,
               meta.metrics)


@bp.get("/openapi.json")
def openapi():
    return jsonify(build_spec(config.current(), catalog.active_codes()))


def build_spec(settings, catalogue=None):
    limit = settings.MAX_BODY_BYTES
    paths = {}
    for group in PATH_GROUPS:
        paths.update(group(settings))

    # The body limit is checked before routing reaches a view: any request declaring a
    # larger body is refused, whatever its path and method. Every request may carry an
    # X-Request-Id, and every answer carries one. gunicorn refuses an overlong request
    # line or header section before the app sees the request.
    for path, item in paths.items():
        for op in item.values():
            op["responses"].setdefault("413", _error(
                f"the body is larger than {limit} bytes (refused before it is read)", ["body_too_large"],
                html=path.startswith("/admin")))
            op.setdefault("parameters", []).append(REQUEST_ID_PARAM)
            for resp in op["responses"].values():
                resp.setdefault("headers", {})["X-Request-Id"] = REQUEST_ID_HEADER
            op["responses"].update(GUNICORN_ERRORS)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "eLife backend",
            "version": API_VERSION,
            "description": (
                "Mobile top-ups for Mongolian numbers, paid with WeChat Pay. JSON bodies use "
                'camelCase; every error is {"error": {"code", "message"}} with a stable snake_case '
                "code (the payment callback answers WeChat in WeChat's own shape). Any request "
                f"declaring a body over {limit} bytes is a 413 body_too_large before it is read; an "
                "unknown path is a 404 not_found, a known path with another method a 405 "
                "method_not_allowed with Allow. The one answer that is not JSON comes from gunicorn, "
                "in front of the app: a request line over 4094 bytes is its 414, more than 100 "
                "headers or one over 8190 bytes its 431, each an HTML page. Customers authenticate with the token of "
                "POST /auth/login" + (", or behind WeChat Cloud Hosting with X-WX-OPENID"
                                      if settings.TRUST_WX_HEADERS else "") + "."),
        },
        "tags": [
            {"name": "customer", "description": "the mini-program"},
            {"name": "wechat", "description": "called by WeChat Pay"},
            {"name": "admin", "description": "the operator on duty; HTML for browsers, JSON for API clients"},
            {"name": "jobs", "description": "the timed jobs, called by Cloud Hosting's timed triggers"},
            {"name": "meta", "description": "probes and this description"},
        ],
        "paths": paths,
        "components": components(catalogue),
    }
