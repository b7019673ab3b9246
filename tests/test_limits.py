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


# -- the client's address (issue 16, finding 3) ------------------------------------------------

def from_peer(peer, xff=None):
    """The request as it reaches the app: from the socket's peer `peer`, with the
    X-Forwarded-For header as it arrived."""
    return {"environ_base": {"REMOTE_ADDR": peer}, "headers": {"X-Forwarded-For": xff} if xff else {}}


@pytest.mark.parametrize("settings", [{}, {"TRUST_WX_HEADERS": "true"}], ids=["default", "behind_wx"])
def test_without_trusted_proxies_forwarded_for_is_ignored(limited, ctx, settings):
    """TRUSTED_PROXY_COUNT=0: the socket's peer is the client, whatever the headers say --
    also with TRUST_WX_HEADERS, which used to believe the first entry."""
    client = limited(LIMIT_LOGINS_PER_MINUTE=1, **settings)
    assert client.post("/auth/login", json={"code": "a"}, **from_peer("203.0.113.7", "1.1.1.1")).status_code == 200
    r = client.post("/auth/login", json={"code": "b"}, **from_peer("203.0.113.7", "2.2.2.2"))
    assert r.status_code == 429  # a forged header does not buy a fresh limit
    # another peer is another client
    assert client.post("/auth/login", json={"code": "c"}, **from_peer("203.0.113.8", "2.2.2.2")).status_code == 200


def test_behind_one_proxy_the_address_it_saw_is_the_client(limited, ctx):
    """TRUSTED_PROXY_COUNT=1 (Cloud Hosting, one nginx): the proxy appends the address it
    saw to X-Forwarded-For. That last entry is the client; entries before it are the
    client's own writing, and rotating them buys nothing."""
    client = limited(LIMIT_LOGINS_PER_MINUTE=2, TRUSTED_PROXY_COUNT=1)
    proxy = "10.0.0.2"
    codes = [client.post("/auth/login", json={"code": f"r{i}"},
                         **from_peer(proxy, f"198.51.100.{i}, 203.0.113.7")).status_code for i in range(4)]
    assert codes == [200, 200, 429, 429]
    # Another client behind the same proxy is not locked out with the first.
    assert client.post("/auth/login", json={"code": "x"}, **from_peer(proxy, "203.0.113.8")).status_code == 200
    # No header (a request that did not come through the proxy): the peer.
    assert client.post("/auth/login", json={"code": "y"}, **from_peer(proxy)).status_code == 200


def test_the_address_goes_into_the_logs(limited, ctx, log_dir):
    client = limited(TRUSTED_PROXY_COUNT=1, LIMIT_ADMIN_FAILURES_PER_MINUTE=100)
    r = client.get("/admin", headers={"Authorization": "Bearer wrong", "X-Forwarded-For": "6.6.6.6, 203.0.113.9"},
                   environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert r.status_code == 403
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    assert [ln for ln in text.splitlines() if "event=admin_auth_failed" in ln][-1].count("ip=203.0.113.9") == 1


def test_the_scheme_is_the_trusted_proxys(limited, ctx):
    """X-Forwarded-Proto is read from the same trusted hops only (the admin cookie's
    Secure flag is decided elsewhere, see test_admin.py)."""
    from flask import request
    seen = []
    for settings, headers in (({}, {"X-Forwarded-Proto": "https"}),
                              ({"TRUSTED_PROXY_COUNT": 1}, {"X-Forwarded-Proto": "https"})):
        client = limited(**settings)
        app = client.application
        app.before_request_funcs.setdefault(None, []).append(lambda: seen.append(request.scheme))
        client.get("/health", headers=headers)
    assert seen == ["http", "https"]


def test_payment_creation_per_order(limited, ctx):
    client = limited(LIMIT_PAYMENTS_PER_ORDER_HOUR=2)
    h = login(client)
    n = client.post("/orders", json=SEED_ORDER, headers=h).get_json()["orderNumber"]
    codes = [client.post("/payment/create", json={"orderNumber": n}, headers=h).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_concurrent_hits_are_all_counted(app):
    """Eight requests at the same instant, each on its own connection: exactly five pass.
    The counter is one atomic upsert, so no hit is lost between workers or hosts."""
    from elife import limits
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


# -- guessing the admin token (issue 16, finding 1) ------------------------------------------

ADMIN_TOKEN = "test-admin-token"  # conftest's


def admin_get(client, token, peer="203.0.113.50"):
    return client.get("/admin/reports.json", headers={"Authorization": f"Bearer {token}"},
                      environ_base={"REMOTE_ADDR": peer})


def admin_form(client, token, peer="203.0.113.50"):
    return client.post("/admin/login", data={"token": token}, headers={"Accept": "application/json"},
                       environ_base={"REMOTE_ADDR": peer})


def test_wrong_bearer_tokens_are_counted_per_address(limited, ctx, log_dir):
    client = limited(LIMIT_ADMIN_FAILURES_PER_MINUTE=3)
    assert admin_get(client, ADMIN_TOKEN).status_code == 200
    codes = [admin_get(client, f"guess-{i}").status_code for i in range(5)]
    assert codes == [403, 403, 403, 429, 429]
    r = admin_get(client, "guess-5")
    assert r.get_json()["error"]["code"] == "rate_limited" and 1 <= int(r.headers["Retry-After"]) <= 60
    # Locked out: the right token too, until the minute ends (it could be a lucky guess).
    assert admin_get(client, ADMIN_TOKEN).status_code == 429
    # Another address is not locked out with it, and the right token works there.
    assert admin_get(client, ADMIN_TOKEN, peer="203.0.113.51").status_code == 200
    assert admin_get(client, "guess", peer="203.0.113.51").status_code == 403
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    failed = [ln for ln in text.splitlines() if "event=admin_auth_failed" in ln and "ip=203.0.113.50" in ln]
    assert len(failed) == 4 and all("via=bearer" in ln for ln in failed)  # the 4th went over


def test_a_right_token_from_an_address_not_locked_out_keeps_working(limited, ctx):
    client = limited(LIMIT_ADMIN_FAILURES_PER_MINUTE=3)
    for i in range(3):  # up to the limit, not past it
        assert admin_get(client, f"guess-{i}").status_code == 403
    assert admin_get(client, ADMIN_TOKEN).status_code == 200
    assert admin_get(client, ADMIN_TOKEN).status_code == 200  # successes count nothing


def test_the_login_form_and_bearer_share_the_count(limited, ctx, log_dir):
    client = limited(LIMIT_ADMIN_FAILURES_PER_MINUTE=2)
    assert admin_form(client, "guess").status_code == 403
    assert admin_get(client, "guess").status_code == 403
    r = admin_form(client, "guess")
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "rate_limited"
    assert admin_form(client, ADMIN_TOKEN).status_code == 429  # no cookie for a guesser
    assert "Set-Cookie" not in admin_form(client, ADMIN_TOKEN).headers
    assert admin_form(client, ADMIN_TOKEN, peer="203.0.113.60").status_code == 303
    text = (log_dir / "combined.log").read_text(encoding="utf-8")
    assert any("event=admin_auth_failed via=form ip=203.0.113.50" in ln for ln in text.splitlines())


def test_a_login_cookie_still_works_from_a_locked_out_address(limited, ctx):
    client = limited(LIMIT_ADMIN_FAILURES_PER_MINUTE=1)
    assert admin_form(client, ADMIN_TOKEN).status_code == 303  # logged in earlier
    for _ in range(2):
        admin_get(client, "guess")
    assert admin_get(client, ADMIN_TOKEN).status_code == 429
    r = client.get("/admin/reports.json", environ_base={"REMOTE_ADDR": "203.0.113.50"})
    assert r.status_code == 200  # the cookie: proof of the right token, not a guess


@mysql_only
def test_addresses_differing_only_in_case_are_one_subject_not_a_500(make_app, sandbox):
    """MariaDB compares the buckets ignoring case: an IPv6 address written in either case
    counts against one window, and neither spelling breaks the login."""
    c = make_app(TRUSTED_PROXY_COUNT=1, LIMIT_LOGINS_PER_MINUTE=3).test_client()
    codes = [c.post("/auth/login", json={"code": f"case-{i}"}, headers={"X-Forwarded-For": xff}).status_code
             for i, xff in enumerate(["FE80::ABCD", "fe80::abcd", "Fe80::AbCd", "fe80::ABCD"])]
    assert codes == [200, 200, 200, 429]


def test_over_http_the_peer_is_the_address_whatever_the_headers_say(live):
    """The service under gunicorn, real sockets and real headers: with the default
    TRUSTED_PROXY_COUNT=0 the client cannot name its own address."""
    import requests
    forged = {"Authorization": "Bearer wrong", "X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.7",
              "Forwarded": "for=6.6.6.8"}
    r = requests.get(f"{live.url}/admin/reports.json", headers=forged, timeout=10)
    assert r.status_code == 403
    text = (live.log_dir / "combined.log").read_text(encoding="utf-8")
    line = [ln for ln in text.splitlines() if "event=admin_auth_failed" in ln][-1]
    assert "ip=127.0.0.1" in line and "6.6.6." not in line
