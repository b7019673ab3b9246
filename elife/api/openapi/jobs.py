"""/jobs/*: the timed jobs Cloud Hosting's timed triggers call (api/jobs.py)."""
from .parts import BODY_ERRORS, FIELD_ERRORS, _common, _error, _json, _json_body, _retry_after

_SECURITY = [{"jobsBearer": []}]


def _refusals(settings):
    """What every job answers before it runs: off, no token, a wrong one, another running."""
    forbidden = ["forbidden"] + (["not_from_platform"] if settings.REQUIRE_WX_SOURCE else [])
    return {
        "401": _error("no Bearer token", ["missing_token"], {"WWW-Authenticate": {"schema": {"type": "string"}}}),
        "403": _error("not JOBS_TOKEN (counted with the admin failures of the address)"
                      + ("; or X-WX-SOURCE missing (REQUIRE_WX_SOURCE)" if settings.REQUIRE_WX_SOURCE else ""),
                      forbidden),
        "404": _error("the jobs are off here (JOBS_ENABLED)", ["jobs_disabled"]),
        "409": _error("another instance runs this job now", ["job_running"],
                      _retry_after("seconds until its lease ends at the latest")),
        "429": _error("too many wrong tokens from this address", ["rate_limited"],
                      _retry_after("seconds until the limit's window ends")),
    }


def _job(settings, operation_id, summary, description, ok, extra=None, body=None):
    op = {"tags": ["jobs"], "operationId": operation_id, "security": _SECURITY, "summary": summary,
          "description": description,
          "responses": {"200": ok, **_refusals(settings), **_common(settings.MAX_BODY_BYTES), **(extra or {})}}
    if body is not None:
        op["requestBody"] = body
    return {"post": op}


def paths(settings):
    budget = settings.JOB_TIME_BUDGET_SECONDS
    return {
        "/jobs/sweep": _job(
            settings, "jobSweep", "the compensation sweep, once (a timed trigger: every minute)",
            f"What `flask elife sweep` runs, within JOB_TIME_BUDGET_SECONDS ({budget} s): no row is started "
            "that could not end by then; `more` says it stopped with work left (the next call carries on).",
            _json("the sweep's summary, as `flask elife sweep --json` prints it",
                  {"$ref": "#/components/schemas/SweepSummary"}),
            {"503": _error("the operator is down (its breaker is open): paid orders wait for it, the rest of "
                           "the sweep ran (details: its summary); or the database is unavailable",
                           ["operator_unavailable", "database_unavailable"],
                           _retry_after("seconds until the breaker half-opens, or to wait"),
                           details={"$ref": "#/components/schemas/SweepSummary"})}),
        "/jobs/reconcile": _job(
            settings, "jobReconcile", "one day of WeChat's bill against our orders (daily, 10:30 China time)",
            "What `flask elife reconcile --json` runs and prints; a day with breaks is a 200 with "
            "\"status\": \"breaks\" (kept for a person on /admin).",
            _json("the run's summary", {"$ref": "#/components/schemas/ReconcileRun"}),
            {"400": _error("the body or its date is not acceptable", BODY_ERRORS + FIELD_ERRORS),
             "502": _error("WeChat could not be asked, refused, or sent a bill not in its format",
                           ["wechat_unavailable", "wechat_rejected", "bill_unreadable"],
                           _retry_after("seconds to wait before asking again")),
             "503": _error("WeChat has not made the day's bill yet, or the database is unavailable",
                           ["bill_not_ready", "database_unavailable"],
                           _retry_after("seconds to wait before asking again"))},
            body=_json_body("#/components/schemas/ReconcileJobRequest",
                            "the day; none, or no body: yesterday in China time", required=False)),
        "/jobs/purge": _job(
            settings, "jobPurge", "payment notices past NOTICE_RETENTION_DAYS deleted (daily)",
            f"In batches, within JOB_TIME_BUDGET_SECONDS ({budget} s); those of orders flagged for a person stay.",
            _json("how many went", {"$ref": "#/components/schemas/PurgeSummary"})),
    }
