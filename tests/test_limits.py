"""Abuse limits: counted in the database (shared by every worker), 429 + Retry-After."""
import threading

import pytest
from conftest import SEED_ORDER, login, mysql_only, row_counts


@pytest.fixture
def limited(make_app, app, sandbox):
    def _make(**limits):
        return make_app(**limits).test_client()
    return _make


def test_orders_per_minute(limited, ctx):
    client = limited(LIMIT_ORDERS_PER_MINUTE=3)
    h = login(client, "busy")
    codes = [client.post("/orders", json=SEED_ORDER, headers=h).status_code for _ in range(5)]
    assert codes == [201, 201, 201, 429, 429]
    r = client.post("/orders", json=SEED_ORDER, headers=h)
    assert r.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert row_counts()["orders"] == 3
    # another user has a limit of their own
    assert client.post("/orders", json=SEED_ORDER, headers=login(client, "calm")).status_code == 201


def test_orders_per_day(limited, ctx):
    client = limited(LIMIT_ORDERS_PER_DAY=2)
    h = login(client, "daily")
    codes = [client.post("/orders", json=SEED_ORDER, headers=h).status_code for _ in range(3)]
    assert codes == [201, 201, 429]


def test_invalid_orders_do_not_use_up_the_limit(limited, ctx):
    client = limited(LIMIT_ORDERS_PER_MINUTE=2)
    h = login(client, "clumsy")
    for _ in range(5):
        assert client.post("/orders", json={**SEED_ORDER, "phoneNumber": "99112233"}, headers=h).status_code == 400
    assert client.post("/orders", json=SEED_ORDER, headers=h).status_code == 201


def test_logins_per_address(limited, ctx):
    client = limited(LIMIT_LOGINS_PER_MINUTE=2)
    codes = [client.post("/auth/login", json={"code": f"c{i}"}).status_code for i in range(3)]
    assert codes == [200, 200, 429]


def test_forwarded_for_is_ignored_unless_behind_the_platform(limited, ctx):
    client = limited(LIMIT_LOGINS_PER_MINUTE=1)
    assert client.post("/auth/login", json={"code": "a"}, headers={"X-Forwarded-For": "1.1.1.1"}).status_code == 200
    r = client.post("/auth/login", json={"code": "b"}, headers={"X-Forwarded-For": "2.2.2.2"})
    assert r.status_code == 429  # a forged header does not buy a fresh limit


def test_payment_creation_per_order(limited, ctx):
    client = limited(LIMIT_PAYMENTS_PER_ORDER_HOUR=2)
    h = login(client)
    n = client.post("/orders", json=SEED_ORDER, headers=h).get_json()["orderNumber"]
    codes = [client.post("/payment/create", json={"orderNumber": n}, headers=h).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_concurrent_hits_are_all_counted(app):
    """Eight requests at the same instant, each on its own connection: exactly five pass.
    The counter is one atomic upsert, so no hit is lost between workers or hosts."""
    from elife.shop import limits
    from elife.errors import RateLimited
    results = []
    barrier = threading.Barrier(8)

    def worker():
        with app.app_context():
            barrier.wait()
            try:
                limits.hit("test", "shared", 5, 60)
                results.append("ok")
            except RateLimited:
                results.append("429")
            finally:
                from elife.extensions import db
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["429"] * 3 + ["ok"] * 5


def test_admin_logins_count_against_the_address(limited, ctx):
    client = limited(LIMIT_LOGINS_PER_MINUTE=2)
    codes = [client.post("/admin/login", data={"token": "guess"}).status_code for _ in range(3)]
    assert codes == [403, 403, 429]


@mysql_only
def test_addresses_differing_only_in_case_are_one_subject_not_a_500(make_app, sandbox):
    """MariaDB compares the buckets ignoring case: an IPv6 address written in either case
    counts against one window, and neither spelling breaks the login."""
    c = make_app(TRUST_WX_HEADERS="true", LIMIT_LOGINS_PER_MINUTE=3).test_client()
    codes = [c.post("/auth/login", json={"code": f"case-{i}"}, headers={"X-Forwarded-For": xff}).status_code
             for i, xff in enumerate(["FE80::ABCD", "fe80::abcd", "Fe80::AbCd", "fe80::ABCD"])]
    assert codes == [200, 200, 200, 429]
