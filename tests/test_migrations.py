"""The seed's schema history: v1, then add_version_and_anomaly_fields; downgrade works."""
import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from conftest import mysql_only
from elife.extensions import db
from elife.ops.schema_check import problems


@pytest.fixture
def migrating_app(make_app, sandbox, migrated):
    app = make_app()
    with app.app_context():
        yield app
        upgrade()  # leave the schema at head for the other tests


def _columns():
    return {c["name"]: c for c in sa.inspect(db.engine).get_columns("orders")}


def _indexes():
    return {i["name"] for i in sa.inspect(db.engine).get_indexes("orders")}


def test_models_match_migrations(migrating_app):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    with db.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), db.metadata)
    assert diff == []


def test_downgrade_to_v1_and_up_again(migrating_app):
    seed_fields = ("version", "anomaly_reason", "anomaly_details")
    seed_indexes = ("idx_recharge_status_at_seqid", "idx_payment_recharge_at", "idx_anomaly_reason")
    assert set(seed_fields) <= set(_columns()) and set(seed_indexes) <= _indexes()
    downgrade(revision="0001_v1_schema")
    db.engine.dispose()
    assert not set(seed_fields) & set(_columns())
    assert not set(seed_indexes) & _indexes()
    said = problems()  # flask elife check-schema names what the rollback removed
    assert any("database is at 0001_v1_schema" in p for p in said)
    assert "missing column orders.version" in said and "missing index idx_anomaly_reason on orders" in said
    upgrade()
    db.engine.dispose()
    assert set(seed_fields) <= set(_columns()) and set(seed_indexes) <= _indexes()
    assert problems() == []


@mysql_only
def test_desc_orders_shows_the_seed_fields(migrating_app):
    with db.engine.connect() as c:
        rows = {r[0]: r for r in c.execute(sa.text("DESC orders"))}
        # Field | Type | Null | Key | Default | Extra
        assert rows["version"][1:3] == ("int(11)", "NO") and str(rows["version"][4]) == "0"
        assert rows["anomaly_reason"][1:3] == ("varchar(100)", "YES")
        assert rows["anomaly_details"][1:3] == ("text", "YES")
        index_rows = list(c.execute(sa.text("SHOW INDEX FROM orders")))
    cols = {}
    for r in index_rows:  # Table, Non_unique, Key_name, Seq_in_index, Column_name, ...
        cols.setdefault(r[2], []).append((r[3], r[4]))
    ordered = {k: [c for _, c in sorted(v)] for k, v in cols.items()}
    assert ordered["idx_payment_recharge_at"] == ["payment_status", "recharge_status", "recharge_at", "id"]
    assert ordered["idx_recharge_status_at_seqid"] == ["recharge_status", "recharge_at", "id"]
    assert ordered["idx_anomaly_reason"][0] == "anomaly_reason"
    assert ordered["uq_orders_order_number"] == ["order_number"]


@mysql_only
def test_openids_and_idempotency_keys_are_case_sensitive(client):
    """Two WeChat users whose openids differ only in case are two customers, and an
    Idempotency-Key 'ABC' does not replay the order made with 'abc'."""
    from conftest import SEED_ORDER
    from elife.shop.customers import user_for_openid
    from elife.extensions import db as _db
    app = client.application
    with app.app_context():
        a, b = user_for_openid("oCaseTest"), user_for_openid("ocasetest")
        assert a.id != b.id
        _db.session.remove()
    h = {"Authorization": "Bearer " + client.post("/auth/login", json={"code": "case"}).get_json()["token"]}
    r1 = client.post("/orders", json=SEED_ORDER, headers={**h, "Idempotency-Key": "abc"})
    r2 = client.post("/orders", json=SEED_ORDER, headers={**h, "Idempotency-Key": "ABC"})
    assert (r1.status_code, r2.status_code) == (201, 201)
    assert r1.get_json()["orderNumber"] != r2.get_json()["orderNumber"]


def test_check_schema_names_a_changed_index_once(migrating_app, settings_env):
    """An index altered by hand (here: one column fewer) is one problem, not a 'missing'
    and an 'unexpected' index of the same name."""
    import os
    import subprocess
    import sys

    from conftest import REPO
    on = " ON orders" if db.engine.dialect.name == "mysql" else ""
    with db.engine.begin() as c:
        c.execute(sa.text(f"DROP INDEX idx_anomaly_reason{on}"))
        c.execute(sa.text("CREATE INDEX idx_anomaly_reason ON orders (anomaly_reason)"))
    try:
        r = subprocess.run([sys.executable, "-m", "flask", "elife", "check-schema"], cwd=REPO,
                           env={**os.environ, **settings_env, "FLASK_APP": "wsgi"},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert r.stdout.splitlines() == [
            "schema: index idx_anomaly_reason on orders differs from the code's: "
            "database (anomaly_reason), code (anomaly_reason, created_at)"]
    finally:
        with db.engine.begin() as c:
            c.execute(sa.text(f"DROP INDEX idx_anomaly_reason{on}"))
            c.execute(sa.text("CREATE INDEX idx_anomaly_reason ON orders (anomaly_reason, created_at)"))


def test_unitel_catalogue_down_and_up_gives_the_seeds_products_their_operator_codes(migrating_app):
    """0006 adds the operator's codes; an upgrade (also one after a rollback) fills them
    for the seed's products, so that they sell without a re-seed."""
    from elife.ops.seed import seed
    seed()
    downgrade(revision="0005_case_sensitive_keys")
    db.engine.dispose()
    cols = {c["name"] for c in sa.inspect(db.engine).get_columns("products")}
    assert "operator_code" not in cols and "operator_price_lists" not in sa.inspect(db.engine).get_table_names()
    upgrade()
    db.engine.dispose()
    with db.engine.connect() as c:
        codes = dict(c.execute(sa.text("SELECT product_code, operator_code FROM products")).all())
    assert codes["5000"] == "SD5000" and codes["DATA1GB"] == "data1gb7d"


def test_downgrade_of_the_refunds_and_reconciliation_revision(migrating_app, client, customer, sandbox):
    """Down to 0005 and up again: the tables and columns go and come back, and an order
    still refunding is left paid (its recharge failed), which the older code refunds."""
    from conftest import SEED_ORDER
    n = client.post("/orders", json=SEED_ORDER, headers=customer).get_json()["orderNumber"]
    with db.engine.begin() as c:
        c.execute(sa.text("UPDATE orders SET payment_status = 'refunding', recharge_status = 'failed', "
                          "refund_requested_at = paid_at WHERE order_number = :n"), {"n": n})
    tables = set(sa.inspect(db.engine).get_table_names())
    assert {"reconciliations", "reconciliation_breaks"} <= tables
    assert {"idx_orders_refunding", "idx_orders_refunded_at"} <= _indexes()
    downgrade(revision="0005_case_sensitive_keys")
    db.engine.dispose()
    assert not {"reconciliations", "reconciliation_breaks"} & set(sa.inspect(db.engine).get_table_names())
    assert "refund_requested_at" not in _columns()
    assert not {"idx_orders_refunding", "idx_orders_refunded_at"} & _indexes()
    with db.engine.connect() as c:
        assert c.execute(sa.text("SELECT payment_status FROM orders WHERE order_number = :n"),
                         {"n": n}).scalar() == "paid"
    assert "missing table reconciliations" in problems()
    upgrade()
    db.engine.dispose()
    assert problems() == []
