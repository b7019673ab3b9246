"""The operator's page, /admin: its reports, login, orders and their actions, and the
reconciliation days; and what every /admin operation answers (admin_catalogue.py uses
the same)."""
from .. import admin as admin_api
from .parts import _TRIM, _error, _form_body, _json, _order_number_param, _query, _retry_after

ADMIN_401 = ["missing_token"]
ADMIN_403 = ["forbidden", "csrf_failed"]


def _admin_security():
    return [{"adminBearer": []}, {"adminCookie": []}]


def _admin_responses(ok, *, codes400=None, codes404=False, codes409=None, html_ok=True):
    """Responses of an /admin operation: JSON errors for API clients, pages for browsers."""
    out = dict(ok)
    if codes400:
        out["400"] = _error("a bad parameter or form field", codes400, html=True)
    out["401"] = _error("no admin token or login cookie (a browser gets the login page)", ADMIN_401,
                        {"WWW-Authenticate": {"schema": {"type": "string"}}}, html=True)
    out["403"] = _error("a wrong admin token, or a cookie-authenticated form without its CSRF token",
                        ADMIN_403, html=True)
    out["429"] = _admin_locked_out()
    if codes404:
        out["404"] = (_error("no such order", ["order_not_found"], html=True) if codes404 is True
                      else _error("no such reconciliation day (or break)", codes404, html=True))
    if codes409:
        out["409"] = _error("the order is not in a state that allows this action", codes409, html=True)
    out["503"] = _error("the database is unavailable for a moment", ["database_unavailable"],
                        _retry_after("seconds to wait before trying again"), html=True)
    return out


NAME_FIELD = {"type": "string", "description": "who, for the audit trail: tidied and cut to 40 characters "
                                               "(anything unusable is just 'admin')"}


def _admin_locked_out():
    return _error("too many wrong admin tokens from this address (LIMIT_ADMIN_FAILURES_PER_MINUTE, Bearer "
                  "and login form together): refused for the rest of the minute, the right token too",
                  ["rate_limited"], _retry_after("seconds until the minute ends"), html=True)


def _window_params():
    return [
        _query("hours", "the window of the success-rate and delay reports, in hours",
               {"type": "integer", "minimum": 1, "maximum": 24 * 30, "default": 24}, empty=True),
        _query("days", "the window of the anomaly report, in days",
               {"type": "integer", "minimum": 1, "maximum": 90, "default": 7}, empty=True),
    ]


def _message_param():
    return _query("m", "a message to show, as the actions' redirects sign it (any other value is ignored)",
                  {"type": "string"})


def paths(settings):
    admin_order_param = _order_number_param()
    paths = {
        "/admin": {"get": {
            "tags": ["admin"], "operationId": "adminIndex", "security": _admin_security(),
            "summary": "the operator's page: the four reports with charts, the reconciliation days, "
                       "and the anomalies",
            "parameters": _window_params() + [_message_param()],
            "responses": _admin_responses(
                {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
                codes400=["invalid_parameter"]),
        }},
        "/admin/reports.json": {"get": {
            "tags": ["admin"], "operationId": "adminReports", "security": _admin_security(),
            "summary": "the four reports and the reconciliation's state as JSON",
            "parameters": _window_params(),
            "responses": _admin_responses(
                {"200": _json("generatedAt, successRate, anomalies, delay, pending, reconciliation, messages, alert",
                              {"type": "object",
                               "required": ["generatedAt", "successRate", "anomalies", "delay", "pending",
                                            "reconciliation", "messages", "alert"],
                               "properties": {"generatedAt": {"type": "string", "format": "date-time"},
                                              "successRate": {"type": "object"},
                                              "anomalies": {"type": "object"},
                                              "delay": {"type": "object"},
                                              "pending": {"type": "object"},
                                              "reconciliation": {"type": "object"},
                                              "alert": {"type": "boolean"}}})},
                codes400=["invalid_parameter"]),
        }},
        "/admin/login": {
            "get": {
                "tags": ["admin"], "operationId": "adminLoginForm", "security": [],
                "summary": "the browser login form",
                "parameters": [_query("next", "where to go afterwards: a path inside /admin (anything else "
                                              "is /admin)", {"type": "string"})],
                "responses": {"200": {"description": "the form",
                                      "content": {"text/html": {"schema": {"type": "string"}}}},
                              "400": _error("next is given twice", ["invalid_parameter"], html=True)},
            },
            "post": {
                "tags": ["admin"], "operationId": "adminLogin", "security": [],
                "summary": "log a browser in with the admin token: sets the elife_admin cookie",
                "requestBody": _form_body({
                    "token": {"type": "string", "description": "ADMIN_TOKEN"},
                    "name": NAME_FIELD,
                    "next": {"type": "string", "description": "a path inside /admin (anything else is /admin)"},
                }, required=["token"]),
                "responses": {
                    "303": {"description": "logged in: to `next` (default /admin), with the cookie",
                            "headers": {"Location": {"schema": {"type": "string"}},
                                        "Set-Cookie": {"schema": {"type": "string"}}}},
                    "403": _error("not the admin token (a browser gets the form again)", ["forbidden"], html=True),
                    "429": _admin_locked_out(),
                    "503": _error("the database is unavailable for a moment", ["database_unavailable"],
                                  _retry_after("seconds to wait before trying again"), html=True),
                },
            },
        },
        "/admin/logout": {"post": {
            "tags": ["admin"], "operationId": "adminLogout", "security": _admin_security(),
            "summary": "end the browser session (a cookie-authenticated form carries csrf_token)",
            "requestBody": {"required": False,
                            "description": ("with the login cookie, the form field csrf_token; with a Bearer "
                                            "token nothing: the body is not read (any is accepted)"),
                            "content": {t: {"schema": {"description": "any"}} for t in
                                        ("application/x-www-form-urlencoded", "multipart/form-data")}},
            "responses": _admin_responses({"303": {"description": "to the login form; the session ends (its "
                                                                 "cookie is cleared and no longer accepted)"}}),
        }},
        "/admin/orders/{orderNumber}": {"get": {
            "tags": ["admin"], "operationId": "adminOrder", "security": _admin_security(),
            "summary": "one order with its payment notices, operator calls and audit trail",
            "parameters": [admin_order_param, _message_param()],
            "responses": _admin_responses(
                {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
                codes400=["invalid_parameter"], codes404=True),
        }},
        "/admin/orders/{orderNumber}.json": {"get": {
            "tags": ["admin"], "operationId": "adminOrderJson", "security": _admin_security(),
            "summary": "one order as JSON: its columns (the phone number masked), payment notices, "
                       "operator calls, order events, the customer's messages, and the actions it allows",
            "parameters": [admin_order_param],
            "responses": _admin_responses(
                {"200": _json("order, notices, operatorCalls, events, messages, receipt, actions",
                              {"type": "object",
                               "required": ["order", "notices", "operatorCalls", "events", "messages", "receipt",
                                            "actions"],
                               "properties": {"order": {"type": "object"},
                                              "receipt": {"type": "object", "nullable": True,
                                                          "description": "as in GET /orders/{orderNumber}"},
                                              "notices": {"type": "array", "items": {"type": "object"}},
                                              "operatorCalls": {"type": "array", "items": {"type": "object"}},
                                              "events": {"type": "array", "items": {"type": "object"}},
                                              "messages": {"type": "array", "items": {"type": "object"},
                                                           "description": "the subscribe messages the order "
                                                                          "earned, and what became of each"},
                                              "actions": {"type": "object"}}})},
                codes404=True),
        }},
    }
    day_param = {"name": "day", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{8}$"},
                 "description": "WeChat's bill day, YYYYMMDD, China time (UTC+8)"}
    paths["/admin/reconciliations/{day}"] = {"get": {
        "tags": ["admin"], "operationId": "adminReconciliation", "security": _admin_security(),
        "summary": "one reconciled bill day: both sides' counts and sums, and its breaks",
        "parameters": [day_param, {"name": "m", "in": "query", "required": False, "schema": {"type": "string"},
                                   "description": "a signed message to show"}],
        "responses": _admin_responses(
            {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
            codes404=["reconciliation_not_found"]),
    }}
    paths["/admin/reconciliations/{day}.json"] = {"get": {
        "tags": ["admin"], "operationId": "adminReconciliationJson", "security": _admin_security(),
        "summary": "one reconciled bill day as JSON, with every break (open first)",
        "parameters": [day_param],
        "responses": _admin_responses(
            {"200": _json("date, state, openBreaks, breaksFound, runs, lastRunAt, wechat, ours, breaks",
                          {"type": "object",
                           "required": ["date", "state", "openBreaks", "breaksFound", "wechat", "ours", "breaks"],
                           "properties": {"date": {"type": "string", "pattern": "^[0-9]{8}$"},
                                          "state": {"type": "string", "enum": ["balanced", "breaks", "resolved"]},
                                          "openBreaks": {"type": "integer"}, "breaksFound": {"type": "integer"},
                                          "wechat": {"type": "object"}, "ours": {"type": "object"},
                                          "breaks": {"type": "array", "items": {"type": "object"}}}})},
            codes404=["reconciliation_not_found"]),
    }}
    paths["/admin/reconciliations/{day}/breaks/{breakId}/resolve"] = {"post": {
        "tags": ["admin"], "operationId": "adminResolveBreak", "security": _admin_security(),
        "summary": "close one open break of the day with a note (required)",
        "description": ("A browser is redirected back to the day's page with a message, also when the "
                        "action is refused; an API client gets a JSON error."),
        "parameters": [day_param, {"name": "breakId", "in": "path", "required": True,
                                   "schema": {"type": "integer"}, "description": "the break's id"}],
        "requestBody": _form_body({
            "name": {"type": "string", "maxLength": 40, "description": "who, for the record"},
            "note": {"type": "string", "maxLength": 1000, "description": "what was found, what was done"},
            "csrf_token": {"type": "string", "description": "required with the login cookie"},
        }, required=["note"]),
        "responses": _admin_responses(
            {"303": {"description": "done (or, for a browser, refused): to the day's page",
                     "headers": {"Location": {"schema": {"type": "string"}}}}},
            codes400=["missing_note", "note_too_long"],
            codes404=["reconciliation_not_found", "break_not_found"], codes409=["break_already_resolved"]),
    }}
    actions = {
        "reconcile": ("ask the operator again about an unknown or processing recharge (with a status "
                      "query: UNITEL_STATUS_PATH is not none)", ["not_reconcilable"], False),
        "mark-delivered": ("without a status query: mark an unclear top-up delivered, once Unitel said it "
                           "was done (a note is required; nothing is sent)", ["not_unconfirmed"], True),
        "fail-refund": ("without a status query: mark an unclear top-up failed and refund it, once Unitel "
                        "said it was not done (a note is required; nothing is sent)", ["not_unconfirmed"], True),
        "refund": ("refund a paid order whose recharge failed", ["not_refundable"], False),
        "resolve": ("mark an anomaly resolved (a note is required)", ["nothing_to_resolve", "anomaly_changed"], True),
        "give-up": ("fail and refund a paid order the operator lost every allowed submit of "
                    "(operator_lost_request), unless the operator now knows it (a note is required)",
                    ["not_given_up"], True),
    }
    for action, (summary, conflicts, note_required) in actions.items():
        note = {"type": "string", "maxLength": admin_api.NOTE_MAX, "description": "why (at most 1000 characters as sent)"}
        if note_required:  # something besides the whitespace removed around it
            note.update(minLength=1, pattern=f"[^{_TRIM[1:-1]}]",
                        description="why: required, and not only whitespace (at most 1000 characters as sent)")
        form = {
            "name": NAME_FIELD,
            "note": note,
            "csrf_token": {"type": "string", "description": "required with the login cookie"},
        }
        if action == "resolve":
            form["reason"] = {"type": "string", "description": "the anomaly reason the person saw"}
        paths[f"/admin/orders/{{orderNumber}}/{action}"] = {"post": {
            "tags": ["admin"], "operationId": "admin" + action.title().replace("-", ""), "security": _admin_security(),
            "summary": summary,
            "description": ("A browser is redirected back to the order's page with a message, also "
                            "when the action is refused; an API client gets a JSON error."),
            "parameters": [admin_order_param],
            "requestBody": _form_body(form, required=["note"] if note_required else ()),
            "responses": _admin_responses(
                {"303": {"description": "done (or, for a browser, refused): to the order's page",
                         "headers": {"Location": {"schema": {"type": "string"}}}}},
                codes400=(["missing_note"] if note_required else []) + ["note_too_long"],
                codes404=True, codes409=conflicts),
        }}
    return paths
