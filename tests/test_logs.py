"""Log lines cannot be forged (issue 16, finding 7): a value a caller wrote -- a URL path,
a field of a notice -- is escaped, so each line is one event and its own `event=` is the
first key on it. The runbook counts lines with greps such as
`grep -c "event=claim_won order=$ORDER"`; nothing a caller sends may add to those counts."""
import logging
import re

import pytest

from elife.logs import escape, event

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ [\w.]+ (.*)$")
FORGED_TS = "2025-01-18T10:00:00.000Z"


def fake_line(n):
    return f"{FORGED_TS} INFO elife.payments event=payment_confirmed order={n} FORGED"


@pytest.mark.parametrize("value, written", [
    ("ORD2026", "ORD2026"),
    ("a b", '"a b"'),
    ("", '""'),
    ("x\ny", "x\\ny"),
    ("x\r\n" + "event=claim_won", "x\\r\\nevent\\x3dclaim_won"),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", "back\\\\slash"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("\u2028\u00a0\ufeff", "\\u2028\\xa0\\ufeff"),
    ("\ud800", "\\ud800"),
    ("支付金额", "支付金额"),
    (1050, "1050"),
    (None, "None"),
])
def test_escape(value, written):
    assert escape(value) == written
    assert "\n" not in escape(value) and "=" not in escape(value)


def test_event_writes_one_line_whose_first_key_is_its_own(log_dir):
    log = logging.getLogger("elife.test")
    from elife.logs import setup_logging
    setup_logging("info", str(log_dir))
    n = "ORD20260118100000424242"
    event(log, logging.WARNING, "test_forgery", order="x\n" + fake_line(n),
          path="/a b event=payment_confirmed order=" + n, note="\r\n" + fake_line(n))
    lines = [ln for ln in (log_dir / "combined.log").read_text(encoding="utf-8").splitlines()
             if "event=test_forgery" in ln]
    assert len(lines) == 1
    _assert_unforged(log_dir, n)
    assert LINE.match(lines[0]).group(1).startswith("event=test_forgery order=")


def _assert_unforged(log_dir, n):
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert not [ln for ln in lines if ln.startswith(FORGED_TS)]
    assert not [ln for ln in lines if f"event=payment_confirmed order={n}" in ln], \
        "a grep for the forged event finds it"
    for ln in lines:
        m = LINE.match(ln)
        if m:  # a log line (not a traceback's): our key comes first
            assert m.group(1).startswith("event="), ln


def test_the_error_handlers_escape_the_path(make_app, sandbox, log_dir):
    """An unexpected error logs the path it happened on; the path is the caller's."""
    from flask import request
    app = make_app()

    @app.before_request  # before routing decides: any path, newlines and all
    def boom():
        if request.path.startswith("/_boom/"):
            raise RuntimeError("boom")

    n = "ORD20260118100000434343"
    r = app.test_client().get("/_boom/x%0A" + fake_line(n).replace(" ", "%20"))
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "internal_error"
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    assert "event=unhandled_error path=\"/_boom/x\\n2025-01-18T10:00:00.000Z INFO" in text
    _assert_unforged(log_dir, n)


def test_a_callback_path_cannot_add_a_line_or_a_grep_hit(client, order, log_dir):
    n = order["orderNumber"]
    for path in ("x%0A" + fake_line(n).replace(" ", "%20"),
                 f"x%20event=payment_confirmed%20order={n}",
                 f"{n}%0D%0Aevent=payment_confirmed%20order={n}"):
        r = client.post(f"/payment/callback/{path}", json={"returnCode": "SUCCESS"})
        assert r.status_code < 500
    _assert_unforged(log_dir, n)


def test_an_admin_path_cannot_add_a_line(client, log_dir):
    """admin_csrf_rejected logs the path of a form posted without its token."""
    r = client.post("/admin/login", data={"token": "test-admin-token"})
    assert r.status_code == 303
    n = "ORD20260118100000454545"
    r = client.post(f"/admin/orders/x%0A{fake_line(n).replace(' ', '%20')}/resolve", data={"note": "x"},
                    headers={"Accept": "application/json"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "csrf_failed"
    _assert_unforged(log_dir, n)
