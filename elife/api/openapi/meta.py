"""The probes and this description (/health, /openapi.json), and the metrics the scraper
reads (/metrics): the document lists the probes first and the metrics last."""
from .parts import _common, _error, _json


def probes(settings):
    limit = settings.MAX_BODY_BYTES
    return {
        "/health": {"get": {
            "tags": ["meta"], "operationId": "health", "summary": "liveness and database check",
            "security": [],
            "responses": {
                "200": _json("up", {"$ref": "#/components/schemas/Health"}),
                "503": _json("the database is unreachable ({\"status\":\"degraded\",\"database\":\"down\"})",
                             {"$ref": "#/components/schemas/Health"}),
            },
        }},
        "/openapi.json": {"get": {
            "tags": ["meta"], "operationId": "openapi", "summary": "this description", "security": [],
            "responses": {"200": _json("the OpenAPI 3.0 description", {"type": "object"}),
                          **_common(limit)},  # it names the products on sale, read from the database
        }},
    }


def metrics(settings):
    return {
        "/metrics": {"get": {
            "tags": ["meta"], "operationId": "metrics", "security": [{"metricsBearer": []}],
            "summary": "Prometheus metrics (text format), summed over every gunicorn worker",
            "description": ("Counters and histograms of the workers (elife_orders_created_total, "
                            "elife_callbacks_total{decision}, elife_operator_requests_total{kind,outcome}, "
                            "elife_operator_request_seconds, elife_recharge_seconds, elife_refunds_total{outcome}, "
                            "elife_http_requests_total{endpoint,status}, elife_breaker_open); the sweep's last "
                            "run (elife_sweep_last_run_*); and, read from the database at the scrape, "
                            "elife_orders_pending_compensation and its _oldest_seconds (the seed's query 4)."),
            "responses": {
                "200": {"description": "the metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": _error("no Bearer token", ["missing_token"],
                              {"WWW-Authenticate": {"schema": {"type": "string"}}}),
                "403": _error("not the metrics token", ["forbidden"]),
            },
        }},
    }
