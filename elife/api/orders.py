import re

from flask import Blueprint, jsonify, request

from .. import services, validators
from ..fulfil import breaker
from ..shop import catalog, orders
from .auth import current_user
from .errors import ApiError
from .common import int_arg, json_object, order_number_or_404, query_arg, string_field
from .views import catalogue as catalogue_view
from .views import orders as orders_view

bp = Blueprint("orders", __name__)

_NAME = re.compile(r"[A-Z_]{1,16}")
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_LIMIT = 100
CLIENT_PRICE_FIELDS = ("totalFee", "productPriceRmb", "productPriceTg", "priceRmb", "priceTg", "paymentStatus", "rechargeStatus")


@bp.get("/products")
def products():
    operator = _filter("operator")
    recharge_type = _filter("rechargeType")
    return jsonify({"products": [catalogue_view.product(p) for p in catalog.products(operator, recharge_type)]})


@bp.post("/orders")
def create_order():
    running = services.current()
    user = current_user()
    data = json_object()
    sent = [f for f in CLIENT_PRICE_FIELDS if f in data]
    if sent:
        raise ApiError(400, "price_not_accepted", f"the server sets prices and states; remove {', '.join(sent)}")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-64 letters, digits or _.:-")
    order, created = orders.create(
        user,
        phone_number=string_field(data, "phoneNumber", 32),
        operator=string_field(data, "productOperator", 16, pattern=_NAME),
        recharge_type=string_field(data, "rechargeType", 16, pattern=_NAME),
        product_code=string_field(data, "productCode", 32, pattern=catalog.PRODUCT_CODE),
        idempotency_key=key,
        vat_register_no=string_field(data, "vatRegisterNo", validators.MAX_LENGTH, required=False) or None,
        settings=running.settings,
        unitel=running.unitel,
        refuse_if_operator_down=lambda operator: breaker.refuse_if_open(running.settings, operator),
    )
    return jsonify(orders_view.order(order)), 201 if created else 200


@bp.get("/orders")
def list_orders():
    user = current_user()
    limit = int_arg("limit", 20, 1, MAX_LIMIT)
    cursor = int_arg("cursor", None, 1, 2**62)
    rows, next_cursor = orders.list_own(user, limit, cursor)
    return jsonify({"orders": [orders_view.order(o) for o in rows], "nextCursor": next_cursor})


@bp.get("/orders/<order_number>")
def get_order(order_number):
    user = current_user()
    return jsonify(orders_view.order(orders.get_own(user, order_number_or_404(order_number))))


def _filter(name):
    value = query_arg(name)
    if value is None or value == "":
        return None
    if not _NAME.fullmatch(value):
        raise ApiError(400, "invalid_filter", f"{name} must be an upper-case name such as UNITEL or VOICE")
    return value
