from flask import Blueprint, jsonify

from .. import config, database

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    try:
        database.ping()
    except Exception:  # noqa: BLE001 -- any failure means the database is not usable now
        return jsonify({"status": "degraded", "database": "down"}), 503
    return jsonify({"status": "ok", "database": "up"})


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.0 description of this API (elife/api/openapi.py)."""
    from .openapi import build_spec
    return jsonify(build_spec(config.current()))
