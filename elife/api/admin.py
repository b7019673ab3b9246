"""The operator's page. Every route needs `Authorization: Bearer <ADMIN_TOKEN>`."""
import hmac

from flask import Blueprint, current_app, jsonify, request

from ..errors import ApiError

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_admin():
    expected = current_app.config["SETTINGS"].ADMIN_TOKEN
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise ApiError(401, "missing_token", "Authorization: Bearer <ADMIN_TOKEN> is required")
    if not expected or not hmac.compare_digest(header[len("Bearer "):].strip().encode(), expected.encode()):
        raise ApiError(403, "forbidden", "this token may not use the admin page")


@bp.get("")
def index():
    return jsonify({"status": "ok"})
