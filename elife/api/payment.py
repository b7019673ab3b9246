from flask import Blueprint, jsonify, request

from ..shop import limits, orders
from ..fulfil import payments
from .auth import current_user
from .common import client_ip, json_object, order_number_or_404, string_field

bp = Blueprint("payment", __name__, url_prefix="/payment")


@bp.post("/create")
def create():
    user = current_user()
    number = order_number_or_404(string_field(json_object(), "orderNumber", 32))
    order = orders.get_own(user, number)
    limits.payments_by_order(order.order_number)
    params = payments.create_payment(order, user.openid, client_ip())
    return jsonify({"orderNumber": order.order_number, "totalFee": order.total_fee, "payment": params})


@bp.post("/callback/<order_number>")
def callback(order_number):
    status, reply = payments.handle_callback(order_number, request.get_data(cache=False), request.headers)
    return jsonify(reply), status
