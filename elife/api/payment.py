"""POST /payment/create, and WeChat's pay notice: answered {"errcode": 0} once it is on
record (also when it was rejected and flagged), so WeChat stops retrying."""
from flask import Blueprint, jsonify, request

from ..shop import limits, orders
from ..fulfil import payments
from .auth import current_user
from .errors import from_domain
from .common import client_ip, json_object, order_number_or_404, string_field

bp = Blueprint("payment", __name__, url_prefix="/payment")

OK = {"errcode": 0, "errmsg": "OK"}
RETRY = {"errcode": 1, "errmsg": "try again later"}  # anything but errcode 0: WeChat retries


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
    verdict = payments.handle_callback(order_number, request.get_data(cache=False), request.headers)
    if verdict.refused is not None:
        raise from_domain(verdict.refused)
    return jsonify(RETRY if verdict.retry_later else OK)
