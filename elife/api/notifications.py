"""The customer's subscribe messages: what the mini-program posts after
wx.requestSubscribeMessage, and what the customer may be told and has allowed."""
from flask import Blueprint, jsonify

from ..notify import consent
from .auth import current_user
from .common import json_object
from .errors import ApiError
from .views import notifications as view

bp = Blueprint("notifications", __name__, url_prefix="/notifications")


@bp.post("/consent")
def post_consent():
    user = current_user()
    data = json_object()
    if "results" not in data:
        raise ApiError(400, "missing_field", "results is required: what wx.requestSubscribeMessage returned")
    return jsonify(view.consents(consent.record(user.id, data["results"])))


@bp.get("")
def list_consents():
    return jsonify(view.consents(consent.consents(current_user().id)))
