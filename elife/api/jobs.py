"""POST /jobs/sweep, /jobs/reconcile, /jobs/purge: the timed jobs, for WeChat Cloud
Hosting's timed triggers (a host runs the same from cron). Each runs fulfil/jobs.py --
the code of `flask elife sweep` and `flask elife reconcile` -- and answers what their
`--json` prints, the command's exit meaning as a status: 200 done (a reconciliation with
breaks: 200, "status": "breaks"), 503 with Retry-After when WeChat's bill is not made
yet or the operator is down, 409 `job_running` while another instance runs the same job.

Only the platform may call them: `Authorization: Bearer <JOBS_TOKEN>`, compared in
constant time; a wrong token counts with the admin failures of its address (429 past
LIMIT_ADMIN_FAILURES_PER_MINUTE); with REQUIRE_WX_SOURCE the platform's X-WX-SOURCE too.
Off (404 `jobs_disabled`) unless JOBS_ENABLED."""
import hmac
import logging
import re
from datetime import datetime

from flask import Blueprint, jsonify, request

from .. import limits, services
from ..fulfil import breaker, jobs
from ..logs import event
from .common import client_ip, json_object, string_field
from .errors import ApiError
from .views import admin as admin_view
from .views import jobs as jobs_view

bp = Blueprint("jobs", __name__, url_prefix="/jobs")
log = logging.getLogger("elife.jobs")
WWW_AUTHENTICATE = 'Bearer realm="elife-jobs"'
DATE = re.compile(r"[0-9]{8}")


@bp.before_request
def require_trigger():
    s = services.current().settings
    if not s.JOBS_ENABLED:
        raise ApiError(404, "jobs_disabled", "the jobs are off here (JOBS_ENABLED); a host runs them from cron")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "missing_token", "Authorization: Bearer <JOBS_TOKEN> is required",
                       {"WWW-Authenticate": WWW_AUTHENTICATE})
    limits.admin_locked_out(s, client_ip())  # guessing from this address: refused, the right token too
    if not hmac.compare_digest(token.encode(), s.JOBS_TOKEN.encode()):
        event(log, logging.WARNING, "admin_auth_failed", via="jobs", ip=client_ip(), path=request.path)
        limits.admin_failure(s, client_ip())
        raise ApiError(403, "forbidden", "this token may not run the jobs")
    if s.REQUIRE_WX_SOURCE and not request.headers.get("X-WX-SOURCE"):
        event(log, logging.WARNING, "job_refused", "X-WX-SOURCE missing: not a call through Cloud Hosting",
              ip=client_ip(), path=request.path)
        raise ApiError(403, "not_from_platform", "the jobs are run only through WeChat Cloud Hosting (X-WX-SOURCE)")


@bp.post("/sweep")
def sweep():
    svc = services.current()
    summary = jobs_view.sweep_summary(jobs.sweep(svc))
    status, _, left = breaker.state(svc.settings)
    if status == breaker.OPEN:  # paid orders wait for the operator: say when to call again
        raise ApiError(503, "operator_unavailable", "the operator is down (breaker open): paid orders wait; "
                                                    "the rest of the sweep ran", {"Retry-After": str(max(1, int(left)))},
                       details=summary)
    return jsonify(summary)


@bp.post("/reconcile")
def reconcile():
    day = None
    if request.get_data(cache=True).strip():
        text = string_field(json_object(), "date", 8, required=False, pattern=DATE)
        if text is not None:
            try:
                day = datetime.strptime(text, "%Y%m%d").date()
            except ValueError:
                raise ApiError(400, "invalid_field", "date must be a day, YYYYMMDD (China time)") from None
    result = jobs.reconcile(services.current(), day)
    return jsonify(admin_view.reconcile_run(result))


@bp.post("/purge")
def purge():
    return jsonify(jobs_view.purge_summary(*jobs.purge(services.current())))
