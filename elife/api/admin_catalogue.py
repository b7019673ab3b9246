"""/admin/catalogue: the exchange rate and the catalogue, as `flask elife rate|product`
change them, for the person on duty in a browser (or a script with the admin token).

Its blueprint is registered inside admin.py's, so who gets in, CSRF and the error pages
are admin.py's. A browser is redirected back to the page with a message; a move of more
than 10 % (rate or price) is answered with a confirmation page (409: nothing changed
yet) whose button sends the same form again with force=1. API clients get JSON.
"""
from decimal import Decimal

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from ..errors import DomainError
from ..shop import catalog, phones, product_admin, rates
from ..shop.pricing import PricingError, price
from . import admin_session
from .admin_session import form_actor
from .common import prefers_html
from .errors import from_domain
from .views import catalogue as catalogue_view

bp = Blueprint("catalogue", __name__)  # inside admin's: /admin/catalogue, endpoints admin.catalogue.*

FORM_MAX = 1000  # no field of these forms is longer; a longer one is refused as it is
SAMPLE_TG = 5000  # the denomination a rate's confirmation page prices as an example


def _back(text, kind="ok"):
    return redirect(url_for("admin.catalogue.catalogue", m=admin_session.sign_message(text, kind)), 303)


def _field(name):
    value = request.form.get(name, "")
    return value if len(value) <= FORM_MAX else value[:FORM_MAX]


def _forced():
    return request.form.get("force", "") in ("1", "true", "on", "yes")


def _done(run, ok_text):
    """Run a change; a browser goes back to the page with what happened, an API client gets
    the JSON `run` returns. Refusals: a message (browser) or the JSON error."""
    try:
        result = run()
    except DomainError as exc:
        if not prefers_html():
            raise
        if exc.code.endswith("_change_too_large"):
            return _confirm(exc)
        return _back(f"Not done: {exc.message}", "error")
    if prefers_html():
        return _back(ok_text(result))
    return jsonify(result)


def _confirm(exc):
    """Asks a person to confirm a big move: the same form again, with force=1."""
    fields = {k: v for k, v in request.form.items() if k not in ("csrf_token", "force")}
    example = None
    if isinstance(exc, rates.RateMoveTooLarge):
        example = {"tg": SAMPLE_TG, "before": _fen(SAMPLE_TG, exc.old), "after": _fen(SAMPLE_TG, exc.new)}
    status = from_domain(exc).status
    return render_template("admin/confirm.html", message=exc.message, action=request.path,
                           fields=fields, example=example), status


def _fen(tg, rate):
    try:
        return price(tg, Decimal(rate)).total_fee
    except PricingError:
        return None


# -- reading ----------------------------------------------------------------------------------

def _state():
    history = rates.history()
    return catalogue_view.catalogue(history, product_admin.all_products(), product_admin.changes())


@bp.get("/catalogue")
def catalogue():
    return render_template("admin/catalogue.html", s=_state(), operators=phones.OPERATOR_CODES,
                           types=catalog.RECHARGE_TYPES, max_move=int(rates.MAX_MOVE * 100),
                           message=admin_session.read_message(request.args.get("m")))


@bp.get("/catalogue.json")
def catalogue_json():
    return jsonify(_state())


# -- changing -----------------------------------------------------------------------------------

@bp.post("/rate")
def set_rate():
    def run():
        old, new = rates.set_rate(_field("rate"), form_actor(), _field("note"), force=_forced())
        return catalogue_view.rate_set(old, new)
    return _done(run, lambda r: f"Rate set: {r['old'] or 'none'} -> {r['new']}.")


@bp.post("/products")
def add_product():
    def run():
        return catalogue_view.listed(product_admin.add(
            _field("operator"), _field("rechargeType"), _field("code"), _field("price"), _field("productName"),
            form_actor(), _field("note"), active=request.form.get("disabled", "") not in ("1", "on", "true")))
    return _done(run, lambda p: f"Added {p['productOperator']}/{p['rechargeType']}/{p['productCode']} "
                                f"at {p['priceTg']} MNT.")


def _set_active(operator, recharge_type, code, active):
    def run():
        item, changed = product_admin.set_active(operator, recharge_type, code, active, form_actor(),
                                                 _field("note"))
        return catalogue_view.toggled(item, changed)
    word = "on sale" if active else "off sale"
    return _done(run, lambda p: f"{p['productOperator']}/{p['rechargeType']}/{p['productCode']} is "
                                f"{'now' if p['changed'] else 'already'} {word}.")


@bp.post("/products/<operator>/<recharge_type>/<code>/disable")
def disable_product(operator, recharge_type, code):
    return _set_active(operator, recharge_type, code, False)


@bp.post("/products/<operator>/<recharge_type>/<code>/enable")
def enable_product(operator, recharge_type, code):
    return _set_active(operator, recharge_type, code, True)


@bp.post("/products/<operator>/<recharge_type>/<code>/price")
def set_product_price(operator, recharge_type, code):
    def run():
        old, item = product_admin.set_price(operator, recharge_type, code, _field("price"), form_actor(),
                                            _field("note"), force=_forced())
        return catalogue_view.repriced(old, item)
    return _done(run, lambda p: f"{p['productOperator']}/{p['rechargeType']}/{p['productCode']}: "
                                f"{p['oldPriceTg']} -> {p['priceTg']} MNT.")
