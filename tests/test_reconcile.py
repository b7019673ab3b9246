"""The daily reconciliation against WeChat's bill (issue 15, part 2): the bill parser on a
bill written out here in WeChat's format, the China-day boundary, every break kind made
through the sandbox's _bill_extra or a lost notice, the lost payment recharged once,
re-runs that replace open breaks and keep resolved ones, the command's exit codes and
JSON, the crontab line, /admin and the report.

Real parts: the app in-process, the test database, the sandbox over HTTP (its bill is
built from its own trades and refunds), `flask elife reconcile` as a process."""
import json
import os
import re
import subprocess
import sys
import time
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import current_app

from conftest import REPO, SEED_ORDER, order_row
from elife import services
from elife.api.views.admin import found_break
from elife.clients.wechat import Bill, BillFormatError, BillNotReady, WeChatClient, parse_bill, yuan_to_fen
from elife.extensions import db
from elife.fulfil import reconcile
from elife.models import Order, ReconciliationBreak
from elife.ops import reports
from elife.timeutil import utcnow
from test_recharge import pay_through_callback

ADMIN = {"Authorization": "Bearer test-admin-token"}
JSON = {"Accept": "application/json"}
FEE = 1050  # SEED_ORDER at the seed's rate

HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
          "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,"
          "商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")
# A day's bill as WeChat writes it: CRLF lines, every field of a row and of the totals
# behind a backtick, amounts in yuan; a product name with a comma in it; a refund row.
BILL = "\r\n".join([
    HEADER,
    "`2026-01-17 09:12:30,`wx2421b1c4370ec43b,`1900000109,`0,`,`4200000501202601170000000001,"
    "`ORD2026011701123000000001,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`SUCCESS,`OTHERS,`CNY,`10.50,`0.00,"
    "`0,`0,`0.00,`0.00,`,`,`eLife, UNITEL VOICE 5000MNT,`{\"orderNumber\":\"ORD2026011701123000000001\"},"
    "`0.06300,`0.60%,`10.50,`0.00,`",
    "`2026-01-17 23:59:59,`wx2421b1c4370ec43b,`1900000109,`0,`,`4200000501202601170000000002,"
    "`ORD2026011715595900000002,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,"
    "`0,`0,`0.00,`0.00,`,`,`eLife UNITEL DATA 100MNT,`,`0.00006,`0.60%,`0.01,`0.00,`",
    "`2026-01-17 11:00:02,`wx2421b1c4370ec43b,`1900000109,`0,`,`4200000501202601160000000003,"
    "`ORD2026011602000000000003,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,"
    "`50300000012026011700000001,`RORD2026011602000000000003,`10.50,`0.00,`ORIGINAL,`SUCCESS,"
    "`eLife UNITEL VOICE 5000MNT,`,`-0.06300,`0.60%,`10.50,`10.50,`",
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
    "`3,`10.51,`10.50,`0.00,`0.00006,`21.01,`10.50",
]) + "\r\n"
DAY = date(2026, 1, 17)


# -- the bill parser ----------------------------------------------------------------------------

def test_the_parser_reads_wechats_bill_format():
    bill = parse_bill(BILL, DAY)
    assert [(r.out_trade_no, r.state, r.order_fee, r.settlement_fee, r.refund_fee, r.applied_refund_fee)
            for r in bill.rows] == [
        ("ORD2026011701123000000001", "SUCCESS", 1050, 1050, 0, 0),
        ("ORD2026011715595900000002", "SUCCESS", 1, 1, 0, 0),
        ("ORD2026011602000000000003", "REFUND", 1050, 0, 1050, 1050)]
    first, _, refund = bill.rows
    assert (first.time, first.transaction_id) == ("2026-01-17 09:12:30", "4200000501202601170000000001")
    assert (first.refund_id, first.out_refund_no) == ("", "")  # WeChat writes 0 for "none"
    assert (refund.out_refund_no, refund.refund_id, refund.refund_status) == \
        ("RORD2026011602000000000003", "50300000012026011700000001", "SUCCESS")
    assert [r.out_trade_no for r in bill.trades] == [first.out_trade_no, "ORD2026011715595900000002"]
    assert bill.totals == {"trades": 3, "settlement": 1051, "refunds": 1050, "orders": 2101, "appliedRefunds": 1050}
    assert bill.totals_differences() == {}
    assert all(isinstance(v, int) for r in bill.rows for v in (r.order_fee, r.refund_fee))


def test_the_parser_keeps_money_exact_and_refuses_what_is_not_a_bill():
    assert [yuan_to_fen(x) for x in ("0.10", "0.20", "10.5", "1234567.89", "0.01000")] == [10, 20, 1050, 123456789, 1]
    assert yuan_to_fen("0.10") + yuan_to_fen("0.20") == 30  # 0.1 + 0.2 is not 0.3 in float
    assert [yuan_to_fen(x) for x in ("0.29", "1.15", "4.35")] == [29, 115, 435]  # int(float * 100): 28, 114, 434
    for bad in ("10.505", "1e3", "-1.00", "10,50", "", "NaN"):
        with pytest.raises(BillFormatError):
            yuan_to_fen(bad)
    # The totals disagree with the rows: said, never corrected.
    off = BILL.replace("`3,`10.51,", "`4,`10.52,")
    assert parse_bill(off, DAY).totals_differences() == {"trades": (3, 4), "settlement": (1051, 1052)}
    cut = BILL.split("总交易单数")[0]  # a download cut off before the totals
    truncated_row = BILL.replace(",`0.60%,`10.50,`0.00,`\r\n`2026-01-17 23", ",`0.60%,`10.50,`\r\n`2026-01-17 23")
    for broken in (cut, truncated_row, BILL.replace("`0.01,`0.00,`0,", "`0.015,`0.00,`0,"),
                   BILL.replace("`2026-01-17 09:12:30", "2026-01-17 09:12:30"), "交易时间,商户订单号\r\n`x,`y\r\n"):
        with pytest.raises(BillFormatError):
            parse_bill(broken, DAY)
    assert parse_bill("", DAY) == Bill(DAY)


def test_the_sandbox_bill_reads_back_and_an_empty_day_is_no_bill(client, customer, sandbox, ctx):
    n = pay_through_callback(client, sandbox, customer, "89400001", "success")
    wx = WeChatClient(current_app.config["SETTINGS"])
    bill = wx.download_bill(reconcile.china_today())
    [row] = bill.rows
    assert (row.out_trade_no, row.state, row.order_fee) == (n, "SUCCESS", FEE)
    assert bill.totals_differences() == {} and bill.totals["trades"] == 1
    assert wx.download_bill(date(2025, 3, 1)) == Bill(date(2025, 3, 1))  # "No Bill Exist"
    with pytest.raises(BillNotReady):
        wx.download_bill(reconcile.china_today() + timedelta(days=1))


# -- helpers ------------------------------------------------------------------------------------

def ymd(day):
    return day.strftime("%Y%m%d")


def set_order(n, **values):
    db.session.execute(sa.update(Order).where(Order.order_number == n).values(**values))
    db.session.commit()


def order_paid_at(client, customer, when):
    """An order of ours recorded paid (and recharged) at `when` (UTC), which the sandbox
    never saw: history, as a database would hold it."""
    n = client.post("/orders", json=SEED_ORDER, headers=customer).get_json()["orderNumber"]
    set_order(n, payment_status="paid", recharge_status="success", paid_at=when, recharge_at=when,
              recharged_at=when, transaction_id="4200" + n[-24:], version=2, submit_count=1)
    return n


def kinds_of(result):
    return {(b.kind, b.order_number): (b.ours, b.theirs) for b in result.breaks}


def day_breaks(day):
    rows = db.session.execute(sa.select(ReconciliationBreak).where(ReconciliationBreak.bill_date == day)
                              .order_by(ReconciliationBreak.id)).scalars().all()
    out = [(b.kind, b.order_number, b.ours, b.theirs, b.resolved_by) for b in rows]
    db.session.commit()
    return out


def break_id(order_number):
    found = db.session.execute(sa.select(ReconciliationBreak.id).where(
        ReconciliationBreak.order_number == order_number)).scalar_one()
    db.session.commit()
    return found


def flask(args, settings_env, **extra):
    env = {**os.environ, **settings_env, "FLASK_APP": "wsgi", **extra}
    return subprocess.run([sys.executable, "-m", "flask", "elife", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


# -- the China-time day ------------------------------------------------------------------------

def test_the_bill_day_is_a_china_day_in_our_utc_times(client, customer, sandbox, ctx):
    late = order_paid_at(client, customer, datetime(2026, 1, 17, 15, 59, 59))  # 23:59:59 China, the 17th
    early = order_paid_at(client, customer, datetime(2026, 1, 17, 16, 0, 0))   # 00:00:00 China, the 18th
    sandbox.bill_extra(date="20260117", outTradeNo=late, totalFee=FEE, time="23:59:59")
    sandbox.bill_extra(date="20260118", outTradeNo=early, totalFee=FEE, time="00:00:00")

    for day, n in ((date(2026, 1, 17), late), (date(2026, 1, 18), early)):
        result = reconcile.run(services.current(), day)
        assert (result.status, result.breaks) == ("balanced", []), (day, kinds_of(result))
        assert (result.ours["trades"], result.ours["tradeFee"]) == (1, FEE), day
        assert (result.wechat["trades"], result.wechat["tradeFee"]) == (1, FEE), day
    # 16:00:00 UTC on the 17th is the 18th in China: counted on the 17th it would be a
    # payment the 17th's bill does not have and the order query does not know.
    assert reconcile.utc_window(date(2026, 1, 18)) == (datetime(2026, 1, 17, 16), datetime(2026, 1, 18, 16))
    assert reconcile.default_day(datetime(2026, 1, 18, 2, 30)) == date(2026, 1, 17)  # cron: 10:30 China
    assert reconcile.default_day(datetime(2026, 1, 18, 16, 0)) == date(2026, 1, 18)


# -- every break kind -------------------------------------------------------------------------

def test_every_break_kind(client, customer, sandbox, ctx):
    today = reconcile.china_today()
    d = ymd(today)
    matched = pay_through_callback(client, sandbox, customer, "89400010", "success")
    sandbox.bill_extra(date=d, outTradeNo="WX-STRANGER-0000000001", totalFee=777)  # not ours at all
    mismatch = pay_through_callback(client, sandbox, customer, "89400011", "success")
    sandbox.bill_extra(date=d, outTradeNo=mismatch, totalFee=FEE + 1)  # replaces the sandbox's own row
    # We hold paid what WeChat never took (its trade is still NOTPAY).
    r = client.post("/orders", json=SEED_ORDER, headers=customer).get_json()
    forged = r["orderNumber"]
    assert client.post("/payment/create", json={"orderNumber": forged}, headers=customer).status_code == 200
    set_order(forged, payment_status="paid", paid_at=utcnow(), recharge_status="success")
    # WeChat refunded a trade we hold paid (a refund made in the merchant platform).
    refunded_there = pay_through_callback(client, sandbox, customer, "89400012", "success")
    sandbox.bill_extra(date=d, outTradeNo=refunded_there, tradeState="REFUND", totalFee=FEE, refundFee=FEE)
    # We hold refunded what WeChat never refunded.
    refunded_here = pay_through_callback(client, sandbox, customer, "89400013", "success")
    set_order(refunded_here, payment_status="refunded", refunded_at=utcnow())
    # Refunded through WeChat, and the bill's refund is another amount.
    refunded = pay_through_callback(client, sandbox, customer, "89400014", "fail")
    assert order_row(refunded)["payment_status"] == "refunded"
    sandbox.bill_extra(date=d, outTradeNo=refunded, tradeState="REFUND", totalFee=FEE, refundFee=FEE - 50)
    # A row counted in the bill's totals but missing from its rows.
    sandbox.bill_extra(date=d, outTradeNo="WX-CUT-0000000000001", totalFee=100, listed=False)

    result = reconcile.run(services.current(), today)
    found = kinds_of(result)
    totals = found.pop(("totals_mismatch", None))
    assert found == {
        ("paid_at_wechat_only", "WX-STRANGER-0000000001"): (None, 777),
        ("amount_mismatch", mismatch): (FEE, FEE + 1),
        ("paid_here_only", forged): (FEE, None),
        ("refund_at_wechat_only", refunded_there): (None, FEE),
        ("refund_here_only", refunded_here): (FEE, None),
        ("refund_amount_mismatch", refunded): (FEE, FEE - 50),
    }
    ours, theirs = totals
    assert set(ours) == set(theirs) == {"trades", "settlement", "orders"}
    assert (theirs["trades"] - ours["trades"], theirs["orders"] - ours["orders"]) == (1, 100)
    assert set(reconcile.KINDS) == {k for k, _ in kinds_of(result)}
    assert matched not in {n for _, n in kinds_of(result)}
    assert result.status == "breaks" and result.recovered == []
    detail = {b.order_number: b.detail for b in result.breaks}
    assert detail[forged] == "order query: NOTPAY" and detail[refunded_here] == "refund query: NOTFOUND"
    # Stored as found; nothing was changed on any order.
    assert len(day_breaks(today)) == 7
    assert order_row(forged)["payment_status"] == "paid" and order_row(refunded_there)["payment_status"] == "paid"


def test_a_payment_whose_notice_was_lost_is_found_by_the_bill_and_recharged_once(client, customer, sandbox, ctx):
    r = client.post("/orders", json={**SEED_ORDER, "phoneNumber": "89400020"}, headers=customer).get_json()
    n = r["orderNumber"]
    assert client.post("/payment/create", json={"orderNumber": n}, headers=customer).status_code == 200
    assert sandbox.pay(n, notify=False).json() == {"paid": True, "notified": False}  # the notice is lost
    today = reconcile.china_today()

    result = reconcile.run(services.current(), today)
    assert kinds_of(result) == {("paid_at_wechat_only", n): (None, FEE)}
    assert result.recovered == [n] and result.status == "breaks"
    row = order_row(n)
    assert (row["payment_status"], row["recharge_status"]) == ("paid", "success")
    assert len(sandbox.submits_for(n)) == 1
    [(kind, number, _, _, by)] = day_breaks(today)
    assert (kind, number, by) == ("paid_at_wechat_only", n, "reconcile"), "closed with what was done"

    again = reconcile.run(services.current(), today)  # and again: nothing more is sent
    assert (again.breaks, again.recovered, again.status) == ([], [], "balanced")
    assert len(sandbox.submits_for(n)) == 1
    assert len(day_breaks(today)) == 1, "the resolved break is kept"


def test_a_refund_still_refunding_that_the_bill_shows_done_is_settled_by_its_query(client, customer, sandbox, ctx):
    sandbox.refund_mode("processing")
    n = pay_through_callback(client, sandbox, customer, "89400021", "fail")
    assert order_row(n)["payment_status"] == "refunding"
    assert sandbox.refund_settle(n, "SUCCESS", notify=False).status_code == 200  # its notice lost
    result = reconcile.run(services.current(), reconcile.china_today())
    assert result.breaks == [] and order_row(n)["payment_status"] == "refunded"


# -- re-runs --------------------------------------------------------------------------------

def test_a_rerun_replaces_open_breaks_and_keeps_resolved_ones(client, customer, sandbox, ctx):
    today = reconcile.china_today()
    for no, fee in (("WX-STRANGER-A", 100), ("WX-STRANGER-B", 200)):
        sandbox.bill_extra(date=ymd(today), outTradeNo=no, totalFee=fee)
    first = reconcile.run(services.current(), today)
    second = reconcile.run(services.current(), today)
    assert [found_break(b) for b in first.breaks] == [found_break(b) for b in second.breaks]
    assert len(day_breaks(today)) == 2, "replaced, not added"

    a, b = break_id("WX-STRANGER-A"), break_id("WX-STRANGER-B")
    r = client.post(f"/admin/reconciliations/{ymd(today)}/breaks/{a}/resolve", headers=ADMIN,
                    data={"name": "Bat", "note": "a test trade of the merchant platform"})
    assert r.status_code == 303
    third = reconcile.run(services.current(), today)
    assert [b.order_number for b in third.breaks] == ["WX-STRANGER-B"] and third.kept_resolved == 1
    rows = day_breaks(today)
    assert [(k, n, by) for k, n, _, _, by in rows] == [("paid_at_wechat_only", "WX-STRANGER-A", "admin:Bat"),
                                                       ("paid_at_wechat_only", "WX-STRANGER-B", None)]
    assert break_id("WX-STRANGER-B") == b, "an open break found again keeps its row"
    fourth = reconcile.run(services.current(), today)
    assert [found_break(x) for x in fourth.breaks] == [found_break(x) for x in third.breaks]
    # The bill corrected (here: the sandbox forgets the rows): the open break goes, the
    # resolved one stays with its note.
    sandbox.reset()
    last = reconcile.run(services.current(), today)
    assert (last.status, last.breaks) == ("balanced", [])
    assert [(k, n, by) for k, n, _, _, by in day_breaks(today)] == [("paid_at_wechat_only", "WX-STRANGER-A", "admin:Bat")]


# -- the command ----------------------------------------------------------------------------

def test_the_command_exit_codes_and_json(client, customer, sandbox, ctx, settings_env):
    today = reconcile.china_today()
    quiet = date(2025, 3, 1)  # no trades at WeChat, no orders here: no bill, balanced
    r = flask(["reconcile", "--date", ymd(quiet), "--json"], settings_env)
    assert r.returncode == 0, r.stderr
    assert "reconcile: database " in r.stderr and "test-secret" not in r.stderr
    out = json.loads(r.stdout)
    assert (out["date"], out["status"], out["breaks"]) == (ymd(quiet), "balanced", [])
    assert out["wechat"]["trades"] == 0 and out["ours"]["trades"] == 0

    pay_through_callback(client, sandbox, customer, "89400030", "success")
    sandbox.bill_extra(date=ymd(today), outTradeNo="WX-STRANGER-C", totalFee=300)
    r = flask(["reconcile", "--date", ymd(today), "--json"], settings_env)
    assert r.returncode == 2, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= {"date", "status", "wechat", "ours", "breaks"}
    assert out["breaks"] == [{"kind": "paid_at_wechat_only", "orderNumber": "WX-STRANGER-C", "ours": None,
                              "theirs": 300}]
    assert (out["wechat"]["trades"], out["wechat"]["tradeFee"], out["ours"]["trades"]) == (2, FEE + 300, 1)
    r = flask(["reconcile", "--date", ymd(today)], settings_env)  # as text
    assert r.returncode == 2 and "paid_at_wechat_only" in r.stdout and "WX-STRANGER-C" in r.stdout

    r = flask(["reconcile", "--date", ymd(today + timedelta(days=1))], settings_env)
    assert r.returncode == 3 and "try again later" in r.stderr
    for bad in ("2026-01-17", "20261341", "yesterday"):
        r = flask(["reconcile", "--date", bad], settings_env)
        assert r.returncode == 1 and "YYYYMMDD" in r.stderr, bad
    sandbox.wechat_down("downloadbill")
    r = flask(["reconcile", "--date", ymd(today)], settings_env)
    assert r.returncode == 1 and "WeChatUnavailable" in r.stderr


def test_crontab_runs_the_reconciliation_daily_at_1030_china_time(app, ctx, sandbox, settings_env, tmp_path):
    text = (REPO / "crontab").read_text()
    entries = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    variables = dict(ln.split("=", 1) for ln in entries if re.fullmatch(r"[A-Z_]+=\S*", ln))
    [line] = [ln for ln in entries if "scripts/reconcile" in ln]
    fields = line.split(None, 5)
    assert fields[:5] == ["30", "2", "*", "*", "*"]  # 02:30 UTC = 10:30 China time
    command = fields[5]
    assert command.startswith("flock -n /tmp/elife-reconcile.lock ")
    sandbox_base = f"http://127.0.0.1:{settings_env['SANDBOX_PORT']}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh", **variables,
           "ELIFE_HOME": str(REPO), "WECHAT_API_BASE": f"{sandbox_base}/wechat", "WECHAT_APPID": "wx",
           "WECHAT_MCH_ID": "1", "WECHAT_ENV_ID": "e", "UNITEL_API_URL": f"{sandbox_base}/unitel",
           "UNITEL_USERNAME": "u", "UNITEL_PASSWORD": "p", "ADMIN_TOKEN": "a" * 32, "SECRET_KEY": "s" * 32,
           **{k: settings_env[k] for k in ("DATABASE_URL", "LOG_DIR")}}
    cron_log = REPO / "logs" / "reconcile.cron.log"
    before = cron_log.stat().st_size if cron_log.exists() else 0
    r = subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0  # yesterday: no trades at WeChat, none here
    with open(cron_log, encoding="utf-8") as f:
        f.seek(before)
        assert f"reconcile {ymd(reconcile.default_day())} (China time): balanced" in f.read()
    holder = subprocess.Popen(["flock", "/tmp/elife-reconcile.lock", "sleep", "5"])
    try:
        time.sleep(0.3)
        started = time.monotonic()
        r = subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path, env=env, timeout=60)
        assert r.returncode != 0 and time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait()


# -- /admin and the report ---------------------------------------------------------------------

def test_admin_lists_the_days_and_resolves_a_break_with_a_note(client, sandbox, ctx):
    today = reconcile.china_today()
    sandbox.bill_extra(date=ymd(today), outTradeNo="WX-STRANGER-D", totalFee=400)
    reconcile.run(services.current(), today)
    page = client.get("/admin", headers=ADMIN).get_data(as_text=True)
    assert f'id="last-reconciled">{today}<' in page and f'href="/admin/reconciliations/{ymd(today)}"' in page
    day = client.get(f"/admin/reconciliations/{ymd(today)}.json", headers=ADMIN).get_json()
    assert (day["state"], day["openBreaks"]) == ("breaks", 1)
    [b] = day["breaks"]
    assert (b["kind"], b["orderNumber"], b["ours"], b["theirs"], b["resolvedAt"]) == \
        ("paid_at_wechat_only", "WX-STRANGER-D", None, 400, None)
    html = client.get(f"/admin/reconciliations/{ymd(today)}", headers=ADMIN).get_data(as_text=True)
    assert f'id="form-resolve-break-{b["id"]}"' in html

    path = f"/admin/reconciliations/{ymd(today)}/breaks/{b['id']}/resolve"
    r = client.post(path, headers={**ADMIN, **JSON}, data={"note": "  "})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "missing_note")
    r = client.post(path, headers={**ADMIN, **JSON}, data={"name": "Bat", "note": "test trade, refunded"})
    assert r.status_code == 303
    r = client.post(path, headers={**ADMIN, **JSON}, data={"note": "again"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "break_already_resolved")
    for bad in (f"/admin/reconciliations/{ymd(today)}/breaks/999999/resolve",
                f"/admin/reconciliations/{ymd(today)}/breaks/x1/resolve"):
        r = client.post(bad, headers={**ADMIN, **JSON}, data={"note": "n"})
        assert (r.status_code, r.get_json()["error"]["code"]) == (404, "break_not_found")
    for bad in ("20250301", "2026011", "20261341", "abc"):
        r = client.get(f"/admin/reconciliations/{bad}.json", headers=ADMIN)
        assert (r.status_code, r.get_json()["error"]["code"]) == (404, "reconciliation_not_found")
    day = client.get(f"/admin/reconciliations/{ymd(today)}.json", headers=ADMIN).get_json()
    assert (day["state"], day["openBreaks"]) == ("resolved", 0)
    assert (day["breaks"][0]["resolvedBy"], day["breaks"][0]["resolvedNote"]) == ("admin:Bat", "test trade, refunded")


def test_an_unreconciled_day_older_than_two_days_is_an_alert(client, customer, sandbox, ctx):
    today = reconcile.china_today()
    rep = reports.all_reports(has_status_query=services.current().unitel.has_status_query)
    assert rep["reconciliation"]["alert"] is False and rep["reconciliation"]["lastDay"] is None
    n = client.post("/orders", json=SEED_ORDER, headers=customer).get_json()["orderNumber"]
    old = today - timedelta(days=3)
    set_order(n, created_at=reconcile.utc_window(old)[0] + timedelta(hours=1))
    rep = reports.all_reports(has_status_query=services.current().unitel.has_status_query)
    assert rep["reconciliation"]["unreconciledDays"] == [str(old)] and rep["alert"] is True
    assert "never reconciled: " + str(old) in reports.as_table(rep)
    # Two days old is not yet late.
    set_order(n, created_at=reconcile.utc_window(today - timedelta(days=2))[0] + timedelta(hours=1))
    assert reports.all_reports(has_status_query=services.current().unitel.has_status_query)["reconciliation"]["alert"] is False
    set_order(n, created_at=reconcile.utc_window(old)[0] + timedelta(hours=1))
    reconcile.run(services.current(), old)
    rc = reports.all_reports(has_status_query=services.current().unitel.has_status_query)["reconciliation"]
    assert (rc["alert"], rc["lastDay"], rc["state"], rc["unreconciledDays"]) == (False, str(old), "balanced", [])
