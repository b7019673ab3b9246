"""POST /payment/create, and WeChat's pay and refund notices: answered {"errcode": 0} once
on record (also when rejected, flagged, or sent to the wrong path), so WeChat stops
retrying; {"errcode": 1} when WeChat's own query could not be asked, so it retries."""
from flask import Blueprint, jsonify, request

from ..shop import limits, orders
from ..fulfil import payments, refund_notices
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


@bp.post("/refund-callback/<order_number>")
def refund_callback(order_number):
    verdict = refund_notices.handle_refund_notice(order_number, request.get_data(cache=False), request.headers)
    if verdict.refused is not None:
        raise from_domain(verdict.refused)
    return jsonify(RETRY if verdict.retry_later else OK)
