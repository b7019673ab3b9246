"""Every query the sweep, the reports and the daily reconciliation send uses an index on a
table of realistic shape (MariaDB's optimizer, after ANALYZE TABLE): no full scans. The
queries are the ones actually sent, captured from the engine while they run."""
import pytest
import sqlalchemy as sa

from conftest import mysql_only
from elife import services
from elife.ops import reports
from elife.fulfil import reconcile, sweep
from elife.extensions import db

pytestmark = mysql_only

ROWS = 20000


@pytest.fixture
def big_table(app, ctx):
    with db.engine.begin() as c:
        c.execute(sa.text("INSERT INTO users (openid, created_at, updated_at) VALUES ('bulk', NOW(), NOW())"))
        uid = c.execute(sa.text("SELECT id FROM users WHERE openid='bulk'")).scalar()
        # Mostly old, recharged orders; a few unpaid, unknown, pending and flagged ones.
        c.execute(sa.text(f"""
            INSERT INTO orders (order_number, user_id, phone_number, product_operator, recharge_type,
                product_code, product_price_tg, product_price_rmb, total_fee, exchange_rate,
                payment_status, recharge_status, paid_at, recharge_at, recharged_at,
                payment_created_at, anomaly_reason, created_at, updated_at, version)
            SELECT CONCAT('ORD', LPAD(seq, 20, '0')), {uid}, '88000000', 'UNITEL', 'VOICE', '5000',
                5000, 10.50, 1050, 0.0021,
                CASE WHEN seq % 50 = 0 THEN 'unpaid' ELSE 'paid' END,
                CASE WHEN seq % 50 = 0 THEN 'pending' WHEN seq % 997 = 0 THEN 'unknown'
                     WHEN seq % 499 = 0 THEN 'pending' ELSE 'success' END,
                CASE WHEN seq % 50 = 0 THEN NULL ELSE NOW() - INTERVAL (30 + seq % 300) DAY END,
                CASE WHEN seq % 50 = 0 OR (seq % 499 = 0 AND seq % 997 != 0) THEN NULL
                     ELSE NOW() - INTERVAL (30 + seq % 300) DAY END,
                CASE WHEN seq % 50 = 0 OR seq % 499 = 0 OR seq % 997 = 0 THEN NULL
                     ELSE NOW() - INTERVAL (30 + seq % 300) DAY END,
                NOW() - INTERVAL (30 + seq % 300) DAY,
                CASE WHEN seq % 1000 = 0 THEN 'amount_mismatch' END,
                NOW() - INTERVAL (30 + seq % 300) DAY, NOW(), 1
            FROM seq_1_to_{ROWS}"""))
        c.execute(sa.text("ANALYZE TABLE orders"))
    yield


def _capture(fn):
    sent = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM orders" in statement:
            sent.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", listener)
    try:
        fn()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listener)
    return sent


def _explain(statement, parameters):
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("EXPLAIN " + statement, parameters)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        raw.close()


def _assert_indexed(queries):
    assert queries
    for statement, params in queries:
        for step in _explain(statement, params):
            assert step["type"] != "ALL", (statement, step)
            assert step["key"], (statement, step)
            # MariaDB writes "5 (0%)" when a rowid filter narrows the rows read
            assert int(str(step["rows"] or 0).split()[0]) < ROWS / 4, (statement, step)


def test_sweep_queries_use_indexes(big_table, sandbox):
    queries = _capture(lambda: sweep.run(services.current()))
    names = " ".join(s for s, _ in queries)
    assert "FOR UPDATE SKIP LOCKED" in names
    _assert_indexed(queries)


def test_report_queries_use_indexes(big_table):
    queries = _capture(lambda: reports.all_reports(has_status_query=services.current().unitel.has_status_query))
    assert len(queries) >= 5
    _assert_indexed(queries)


def test_without_a_status_query_the_count_of_unconfirmed_orders_uses_an_index(big_table, make_app, sandbox):
    """UNITEL_STATUS_PATH=none: the sweep and the report count the paid, unclear orders
    waiting for a person (state.count_awaiting_confirmation)."""
    with make_app(UNITEL_STATUS_PATH="none").app_context():
        queries = _capture(lambda: sweep.run(services.current())) + _capture(lambda: reports.all_reports(has_status_query=services.current().unitel.has_status_query))
    counts = [q for q in queries if "count(" in q[0].lower() and "orders.payment_status" in q[0]
              and "orders.recharge_status" in q[0] and "recharge_at" not in q[0]]
    oldest = [q for q in queries if q[0].lstrip().startswith("SELECT orders.recharge_at")]
    assert counts and oldest, [s for s, _ in queries]


def test_sweep_refund_query_selection_uses_its_index(big_table, sandbox):
    with db.engine.begin() as c:  # some refunds WeChat is still working on, long accepted
        c.execute(sa.text("UPDATE orders SET payment_status = 'refunding', recharge_status = 'failed', "
                          "refund_requested_at = NOW() - INTERVAL 1 DAY WHERE id % 1500 = 7"))
        c.execute(sa.text("ANALYZE TABLE orders"))
    queries = [q for q in _capture(lambda: sweep.run(services.current())) if "refund_requested_at <" in q[0]]
    assert queries
    _assert_indexed(queries)


def test_the_days_reconciliation_queries_use_indexes(big_table, sandbox):
    day = reconcile.china_today()
    # A few of the day's orders: paid (by paid_at), refunded (by refunded_at), and a bill
    # row naming one of ours (looked up by order number).
    with db.engine.begin() as c:
        c.execute(sa.text("UPDATE orders SET paid_at = UTC_TIMESTAMP() - INTERVAL 1 MINUTE "
                          "WHERE id % 4000 = 1"))
        c.execute(sa.text("UPDATE orders SET payment_status = 'refunded', refunded_at = UTC_TIMESTAMP() "
                          "WHERE id % 4000 = 2"))
        c.execute(sa.text("ANALYZE TABLE orders"))
    sandbox.bill_extra(date=day.strftime("%Y%m%d"), outTradeNo="ORD" + "7".zfill(20), totalFee=1050)
    queries = _capture(lambda: reconcile.run(services.current(), day))
    sent = " ".join(s for s, _ in queries)
    assert "orders.paid_at" in sent and "orders.refunded_at" in sent and "order_number IN" in sent
    _assert_indexed(queries)
