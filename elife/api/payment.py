"""POST /payment/create, and WeChat's pay and refund notices: answered {"errcode": 0} once
on record (also when rejected, flagged, or sent to the wrong path), so WeChat stops
retrying; {"errcode": 1} when WeChat's own query could not be asked, so it retries.

WeChat gives a notice 5 s; the operator may take 30. So the top-up a notice leads to
runs after the answer is sent (when the server closes the response), in an app context
of its own, on the worker's pool of RECHARGE_THREADS threads -- the request's thread is
free at once for the next notice -- or, with RECHARGE_THREADS=0, in the request's own
thread. Its claim is committed before the answer, so a worker that dies before or during
the submit leaves a claimed order that the sweep settles through the status query; on
SIGTERM the pool finishes what it started (gunicorn's graceful_timeout).

After the top-up's settle (and its refund, if the operator refused), the same job sends
the subscribe messages the settle earned (notify/outbox.py); a refund notice's answer is
followed the same way by the `refunded` message, when its refund query confirmed it. They
run after the answer, never before it; a worker that dies first leaves them to the sweep.
"""
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, current_app, jsonify, request

from .. import logs, services
from ..fulfil import notices, payments
from ..notify import outbox
from .. import limits
from ..shop import orders
from .auth import current_user
from .common import client_ip, json_object, order_number_or_404, string_field
from .errors import from_domain

bp = Blueprint("payment", __name__, url_prefix="/payment")
log = logging.getLogger("elife.payments")

OK = {"errcode": 0, "errmsg": "OK"}
RETRY = {"errcode": 1, "errmsg": "try again later"}  # anything but errcode 0: WeChat retries


@bp.post("/create")
def create():
    user = current_user()
    number = order_number_or_404(string_field(json_object(), "orderNumber", 32))
    order = orders.get_own(user, number)
    limits.payments_by_order(services.current().settings, order.order_number)
    params = payments.create_payment(services.current(), order, user.openid, client_ip())
    return jsonify({"orderNumber": order.order_number, "totalFee": order.total_fee, "payment": params})


@bp.post("/callback/<order_number>")
def callback(order_number):
    jobs = []
    svc = services.current()
    notice = svc.pay.parse_notice(request.get_data(cache=False), request.headers)
    verdict = notices.handle_payment(svc, order_number, notice, later=jobs.append)
    if verdict.refused is not None:
        raise from_domain(verdict.refused)
    resp = jsonify(RETRY if verdict.retry_later else OK)
    if jobs:
        jobs.append(lambda: outbox.send_for_order(svc, order_number))  # after the settle, in order
        _after_answer(resp, svc, jobs)
    return resp


def _after_answer(resp, svc, jobs):
    """Run `jobs` once the answer is sent: on the pool, or in this thread (RECHARGE_THREADS=0)."""
    app, rid = current_app._get_current_object(), logs.current_request_id()
    threads = svc.settings.RECHARGE_THREADS
    if threads > 0:
        resp.call_on_close(lambda: _pool(threads).submit(_run_after_answer, app, jobs, rid))
    else:
        resp.call_on_close(lambda: _run_after_answer(app, jobs, rid))


_pools = {}
_pools_lock = threading.Lock()


def _pool(threads):
    """This process's recharge pool (made on first use: after gunicorn's fork)."""
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recharge")
        return pool


def _run_after_answer(app, jobs, request_id):
    """The notice's top-up, carrying the notice's request id into its log lines and
    audit rows (it is the same piece of work)."""
    logs.set_request_id(request_id)
    try:
        with app.app_context():
            for job in jobs:
                try:
                    job()
                except Exception:  # noqa: BLE001 -- the claim is committed: the sweep finishes it
                    log.exception("event=after_answer_error")
    finally:
        logs.set_request_id(None)


@bp.post("/refund-callback/<order_number>")
def refund_callback(order_number):
    svc = services.current()
    notice = svc.pay.parse_notice(request.get_data(cache=False), request.headers)
    verdict = notices.handle_refund(svc, order_number, notice)
    if verdict.refused is not None:
        raise from_domain(verdict.refused)
    resp = jsonify(RETRY if verdict.retry_later else OK)
    if verdict.decision == "refund_confirmed":  # the `refunded` message confirm_refund earned
        _after_answer(resp, svc, [lambda: outbox.send_for_order(svc, order_number)])
    return resp
