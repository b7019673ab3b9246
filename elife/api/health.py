from flask import Blueprint, jsonify

from .. import database

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    try:
        database.ping()
    except Exception:  # noqa: BLE001 -- any failure means the database is not usable now
        return jsonify({"status": "degraded", "database": "down"}), 503
    return jsonify({"status": "ok", "database": "up"})

