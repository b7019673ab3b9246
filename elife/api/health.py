from flask import Blueprint, jsonify

from .. import database, services
from ..fulfil import breaker

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    try:
        database.ping()
    except Exception:  # noqa: BLE001 -- any failure means the database is not usable now
        return jsonify({"status": "degraded", "database": "down"}), 503
    # The operator down is not the service down (still 200): new orders wait, paid ones too.
    s = services.current().settings
    operator = "down" if breaker.state(s)[0] == breaker.OPEN else "up"
    return jsonify({"status": "ok", "database": "up", "operator": operator, "wechat": services.wechat_path(s)})

