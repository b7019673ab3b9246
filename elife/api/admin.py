"""The operator's page: the reports with charts, the anomalies with their audit trail,
the actions a person may take on an order, and the reconciliation days.

Who gets in:
- API clients: `Authorization: Bearer <ADMIN_TOKEN>` (401 without it, 403 when wrong);
  every wrong token, Bearer or login form, counts against the client's address: past
  LIMIT_ADMIN_FAILURES_PER_MINUTE the address gets 429 for the rest of the minute, with
  the right token too (a login cookie, proof of an earlier right token, still works);
- browsers: the cookie set by POST /admin/login (see admin_session.py); a form posted
  with the cookie must carry its CSRF token, or it is a 403.
Without either, a 401: a JSON error, or the login page when the request prefers HTML.

Actions never change an order's state themselves: "ask the operator again", "refund"
(again), and -- without a status query -- "mark delivered" and "fail and refund" go
through recharge.py and refunds.py, "mark resolved" through state.resolve. Each
leaves an order_events row with who (admin, or admin:<name>) and why (the note).
The reconciliation's days (/admin/reconciliations/<YYYYMMDD>) list their breaks; a
person closes one with a note (fulfil/reconcile.resolve_break).
"""
import logging
import re
import secrets
from datetime import datetime

from flask import (Blueprint, g, jsonify, make_response, redirect, render_template,
                   request, url_for)

from .. import limits, services
from ..ops import admin_data, charts, reports
from . import admin_catalogue, admin_session
from ..fulfil import audit, breaker, recharge, reconcile, refunds, state
from ..errors import DomainError
from .errors import ApiError, error_response, from_domain
from ..extensions import db
from ..logs import event
from ..timeutil import iso, utcnow
from ..validators import clean_name
from .admin_session import form_actor
from .common import TRIM, client_ip, int_arg, order_number_or_404, prefers_html, query_arg
from .views import admin as admin_view
from .views.orders import receipt

log = logging.getLogger("elife.admin")

bp = Blueprint("admin", __name__, url_prefix="/admin")
# The rate and the catalogue (/admin/catalogue, /admin/rate, /admin/products...): a blueprint
# of their own inside this one, so that who gets in, CSRF and the error pages are this one's.
bp.register_blueprint(admin_catalogue.bp)

NOTE_MAX = 1000
OPEN_ENDPOINTS = ("admin.login_form", "admin.login")
WWW_AUTHENTICATE = 'Bearer realm="elife-admin"'


# -- who gets in -----------------------------------------------------------------------------

@bp.before_request
def require_admin():
    g.csp_nonce = secrets.token_urlsafe(12)
    g.admin_session = None
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    settings = services.current().settings
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        limits.admin_locked_out(settings, client_ip())
        if not admin_session.token_matches(header[len("Bearer "):].strip()):
            _auth_failed(settings, "bearer")
            raise ApiError(403, "forbidden", "this token may not use the admin page")
        return None
    session = admin_session.read_cookie(request.cookies.get(admin_session.COOKIE_NAME))
    if session is None:
        raise ApiError(401, "missing_token", "Authorization: Bearer <ADMIN_TOKEN> is required",
                       {"WWW-Authenticate": WWW_AUTHENTICATE})
    g.admin_session = session
    if request.method not in ("GET", "HEAD", "OPTIONS") and \
            not admin_session.csrf_ok(session, request.form.get("csrf_token")):
        event(log, logging.WARNING, "admin_csrf_rejected", path=request.path, ip=client_ip())
        raise ApiError(403, "csrf_failed", "this form is stale or did not come from the admin page; "
                                           "reload the page and try again")
    return None


def _auth_failed(settings, via):
    """A wrong admin token, counted against the address (RateLimited once past the limit)."""
    event(log, logging.WARNING, "admin_auth_failed", via=via, ip=client_ip(), path=request.path)
    limits.admin_failure(settings, client_ip())


@bp.errorhandler(DomainError)
def admin_domain_error(e):
    return admin_error(from_domain(e))


@bp.errorhandler(ApiError)
def admin_error(e):
    """Errors on /admin: JSON for API clients; a page for browsers (the login page for a 401)."""
    if not prefers_html():
        return error_response(e.status, e.code, e.message, e.headers)
    if e.status == 401:
        target = request.full_path.rstrip("?") if request.method == "GET" else url_for("admin.index")
        resp = make_response(_login_page(next_url=target), 401)
    else:
        resp = make_response(render_template("admin/error.html", status=e.status, code=e.code,
                                             message=e.message), e.status)
    for k, v in e.headers.items():
        resp.headers[k] = v
    return resp


@bp.after_request
def admin_headers(resp):
    """Nothing on these pages is cached, framed, or loaded from elsewhere."""
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "no-referrer"
    if resp.mimetype == "text/html":
        resp.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'nonce-{g.get('csp_nonce', '')}'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return resp


@bp.context_processor
def _template_globals():
    session = g.get("admin_session")
    return {
        "csp_nonce": g.get("csp_nonce", ""),
        "csrf_token": admin_session.csrf_token(session) if session else "",
        "admin_name": session["name"] if session else "",
        "logged_in_by_cookie": session is not None,
    }


@bp.app_template_filter("utc")
def _utc(value):
    """A stored (naive UTC) time as the reports show it: 2026-01-18T10:00:00.123Z."""
    return iso(value) if value is not None else ""


# -- logging in from a browser ---------------------------------------------------------------

def _login_page(error=None, next_url=None):
    return render_template("admin/login.html", error=error, next_url=admin_session.safe_next(next_url))


@bp.get("/login")
def login_form():
    return _login_page(next_url=query_arg("next"))


@bp.post("/login")
def login():
    settings = services.current().settings
    limits.admin_locked_out(settings, client_ip())
    token = request.form.get("token", "")
    next_url = admin_session.safe_next(request.form.get("next"))
    if not admin_session.token_matches(token.strip()):
        _auth_failed(settings, "form")
        if prefers_html():
            return _login_page(error="That is not the admin token.", next_url=next_url), 403
        raise ApiError(403, "forbidden", "this token may not use the admin page")
    name = clean_name(request.form.get("name", ""))
    resp = redirect(next_url, 303)
    resp.set_cookie(admin_session.COOKIE_NAME, admin_session.new_cookie_value(name),
                    max_age=admin_session.MAX_AGE, path=admin_session.COOKIE_PATH,
                    httponly=True, samesite="Strict", secure=_secure_cookie(settings))
    event(log, logging.INFO, "admin_login", actor=admin_session.actor_for(name), ip=client_ip())
    return resp


@bp.post("/logout")
def logout():
    resp = redirect(url_for("admin.login_form"), 303)
    resp.delete_cookie(admin_session.COOKIE_NAME, path=admin_session.COOKIE_PATH,
                       httponly=True, samesite="Strict", secure=_secure_cookie(services.current().settings))
    if g.admin_session:
        admin_session.revoke(g.admin_session)
        event(log, logging.INFO, "admin_logout", actor=admin_session.actor_for(g.admin_session["name"]),
              ip=client_ip())
    return resp


def _secure_cookie(settings):
    """Always in production. Elsewhere when the request came over https, as our own
    server or trusted proxies (TRUSTED_PROXY_COUNT) say -- never a client's header."""
    return settings.is_production or request.is_secure


# -- the pages -------------------------------------------------------------------------------

def _window():
    return int_arg("hours", 24, 1, 24 * 30), int_arg("days", 7, 1, 90)


@bp.get("")
def index():
    hours, days = _window()
    now = utcnow()
    rep = reports.all_reports(has_status_query=services.current().unitel.has_status_query, hours=hours, days=days, now=now)
    rows, total = admin_data.anomalies()
    status, opened_at, left = breaker.state(services.current().settings)
    return render_template("admin/index.html", rep=rep, charts=charts.all_charts(rep, now.date()),
                           breaker=admin_view.breaker(status, opened_at, left),
                           anomalies=[admin_view.anomaly(r) for r in rows], anomaly_total=total,
                           hours=hours, days=days,
                           reconciliations=[admin_view.reconciliation_day(rec, n)
                                            for rec, n in admin_data.reconciliation_days()],
                           message=admin_session.read_message(query_arg("m")))


@bp.get("/reports.json")
def reports_json():
    hours, days = _window()
    return jsonify(reports.all_reports(has_status_query=services.current().unitel.has_status_query, hours=hours, days=days))


@bp.get("/orders/<order_number>")
def order_detail(order_number):
    detail = _detail_or_404(order_number)
    return render_template("admin/order.html", d=detail, o=detail["order"], receipt=receipt(detail["order"]),
                           message=admin_session.read_message(query_arg("m")))


@bp.get("/orders/<order_number>.json")
def order_detail_json(order_number):
    return jsonify(admin_view.order_detail(_detail_or_404(order_number)))


def _detail_or_404(order_number):
    detail = admin_data.order_detail(order_number_or_404(order_number),
                                     status_query=services.current().unitel.has_status_query)
    if detail is None:
        raise ApiError(404, "order_not_found", "no such order")
    return detail


# -- the actions -----------------------------------------------------------------------------

def _note(required, ask="why is this resolved?"):
    note = request.form.get("note", "")
    if len(note) > NOTE_MAX:  # as sent, as the description's maxLength counts it
        raise _Refused(400, "note_too_long", f"the note is longer than {NOTE_MAX} characters")
    note = note.strip(TRIM)
    if required and not note:
        raise _Refused(400, "missing_note", f"write a note: {ask}")
    return note


class _Refused(Exception):
    """An action that was not carried out: a JSON error for API clients, a message on
    the order's page for a browser."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _back(n, text, kind="ok"):
    return redirect(url_for("admin.order_detail", order_number=n,
                            m=admin_session.sign_message(text, kind)), 303)


def _action(order_number, name, run):
    """Run one action on an order and record it; `run(order, actor, note)` returns the
    message to show, or raises _Refused."""
    n = order_number_or_404(order_number)
    detail = _detail_or_404(n)
    actor = form_actor()
    try:
        text = run(detail, actor)
    except _Refused as r:
        if prefers_html():
            return _back(n, r.message, "error")
        raise ApiError(r.status, r.code, r.message) from None
    event(log, logging.INFO, "admin_action", order=n, action=name, actor=actor)
    return _back(n, text)


def _record(n, name, actor, note, outcome):
    """The audit row: who did what, why (the note), and what came of it."""
    audit.record_event(n, name, actor, f"{note}\n{outcome}" if note else outcome)
    db.session.commit()


def _run_recorded(n, name, actor, note, fn):
    """Call into the state machine; the audit row is written whatever happens."""
    try:
        fn()
    except Exception as exc:
        db.session.rollback()
        _record(n, name, actor, note, f"error: {type(exc).__name__}")
        raise
    payment, recharge_status, reason = admin_data.order_state(n)
    outcome = f"now: payment {payment}, recharge {recharge_status}" + (f", anomaly {reason}" if reason else "")
    _record(n, name, actor, note, outcome)
    return outcome


@bp.post("/orders/<order_number>/reconcile")
def act_reconcile(order_number):
    def run(detail, actor):
        note = _note(required=False)
        o = detail["order"]
        if not detail["can_reconcile"]:
            if not detail["status_query"]:
                raise _Refused(409, "not_reconcilable", "the operator has no status query (UNITEL_STATUS_PATH "
                                                        "is none): confirm with Unitel, then mark delivered "
                                                        "or fail and refund")
            raise _Refused(409, "not_reconcilable",
                           f"only an unknown or processing recharge can be asked about; this one is {o.recharge_status}")
        outcome = _run_recorded(o.order_number, "admin_reconcile", actor, note,
                                lambda: recharge.reconcile(services.current(), o.order_number, actor, force=True))
        return f"Asked the operator again; {outcome}."
    return _action(order_number, "reconcile", run)


@bp.post("/orders/<order_number>/refund")
def act_refund(order_number):
    def run(detail, actor):
        note = _note(required=False)
        o = detail["order"]
        if not detail["can_refund"]:
            raise _Refused(409, "not_refundable", "only a paid order whose recharge failed can be refunded; "
                                                  f"this one is {o.payment_status}, recharge {o.recharge_status}")
        outcome = _run_recorded(o.order_number, "admin_refund", actor, note,
                                lambda: refunds.refund(services.current(), o.order_number, actor))
        return f"Refund asked of WeChat; {outcome}."
    return _action(order_number, "refund", run)


@bp.post("/orders/<order_number>/resolve")
def act_resolve(order_number):
    def run(detail, actor):
        note = _note(required=True)
        o = detail["order"]
        if not detail["can_resolve"]:
            raise _Refused(409, "nothing_to_resolve", "this order has no open anomaly")
        seen = request.form.get("reason") or None
        if not state.resolve(o.order_number, actor, note, expected_reason=seen):
            db.session.rollback()
            raise _Refused(409, "anomaly_changed", "the anomaly changed since the page was loaded; "
                                                   "look at it again")
        db.session.commit()
        return "Marked resolved."
    return _action(order_number, "resolve", run)


@bp.post("/orders/<order_number>/give-up")
def act_give_up(order_number):
    def run(detail, actor):
        note = _note(required=True, ask="why give up on this top-up?")
        o = detail["order"]
        if not detail["can_give_up"]:
            raise _Refused(409, "not_given_up",
                           "only a paid order the operator lost every submit of can be failed and refunded; "
                           f"this one is {o.payment_status}, recharge {o.recharge_status}, {o.submit_count} submits")
        outcome = _run_recorded(o.order_number, "admin_give_up", actor, note,
                                lambda: recharge.give_up(services.current(), o.order_number, actor))
        return f"Asked the operator once more; {outcome}."
    return _action(order_number, "give_up", run)


def _unconfirmed(detail, what):
    o = detail["order"]
    if not detail["can_confirm"]:
        raise _Refused(409, "not_unconfirmed",
                       f"only a paid, unclear top-up with no status query to ask can be {what}; this one is "
                       f"{o.payment_status}, recharge {o.recharge_status}"
                       + ("" if not detail["status_query"] else " (and the operator has a status query: ask it)"))
    return o


@bp.post("/orders/<order_number>/mark-delivered")
def act_mark_delivered(order_number):
    def run(detail, actor):
        note = _note(required=True, ask="what did Unitel say, and who said it?")
        o = _unconfirmed(detail, "marked delivered")
        outcome = _run_recorded(o.order_number, "admin_mark_delivered", actor, note,
                                lambda: recharge.confirm_delivered(services.current(), o.order_number, actor))
        return f"Marked delivered; {outcome}."
    return _action(order_number, "mark_delivered", run)


@bp.post("/orders/<order_number>/fail-refund")
def act_fail_refund(order_number):
    def run(detail, actor):
        note = _note(required=True, ask="what did Unitel say, and who said it?")
        o = _unconfirmed(detail, "failed and refunded")
        outcome = _run_recorded(o.order_number, "admin_fail_refund", actor, note,
                                lambda: recharge.confirm_failed(services.current(), o.order_number, actor))
        return f"Marked failed and refunded; {outcome}."
    return _action(order_number, "fail_refund", run)


# -- the reconciliation ----------------------------------------------------------------------

def _day_or_404(text):
    try:
        day = datetime.strptime(text, "%Y%m%d").date() if re.fullmatch(r"[0-9]{8}", text or "") else None
    except ValueError:
        day = None
    found = admin_data.reconciliation_day(day) if day else None
    if found is None:
        raise ApiError(404, "reconciliation_not_found", "no reconciliation of this day (YYYYMMDD, China time)")
    return day, admin_view.reconciliation_detail(*found)


@bp.get("/reconciliations/<day>")
def reconciliation_page(day):
    when, detail = _day_or_404(day)
    return render_template("admin/reconciliation.html", r=detail, day=when,
                           message=admin_session.read_message(request.args.get("m")))


@bp.get("/reconciliations/<day>.json")
def reconciliation_json(day):
    return jsonify(_day_or_404(day)[1])


@bp.post("/reconciliations/<day>/breaks/<break_id>/resolve")
def act_resolve_break(day, break_id):
    # A plain string in the rule, so that any path under /admin meets the login check first.
    when, detail = _day_or_404(day)
    break_id = int(break_id) if break_id.isdigit() and len(break_id) < 19 else None
    actor = form_actor()

    def back(text, kind="ok"):
        return redirect(url_for("admin.reconciliation_page", day=day,
                                m=admin_session.sign_message(text, kind)), 303)
    try:
        note = _note(required=True, ask="what was found, what was done?")
        if not any(b["id"] == break_id for b in detail["breaks"]):
            raise ApiError(404, "break_not_found", "no such break on this day")
        if not reconcile.resolve_break(when, break_id, actor, note):
            raise _Refused(409, "break_already_resolved", "this break is already resolved")
    except _Refused as r:
        if prefers_html():
            return back(r.message, "error")
        raise ApiError(r.status, r.code, r.message) from None
    event(log, logging.INFO, "admin_action", action="resolve_break", day=day, id=break_id, actor=actor)
    return back("Break resolved.")
