"""python -m elife.ops.smoke [BASE_URL]: check a running service after a deploy.

Always: /health and the catalogue. Against a sandboxed service (the sandbox answers on
SANDBOX_URL, default http://127.0.0.1:$SANDBOX_PORT): log in, create the seed's order,
create the payment, pay in the sandbox and wait for the recharge. One line per step;
exit 1 at the first failure.
"""
import sys
import time

import requests

from ..config import load_settings
from ..fulfil.state import RechargeStatus

SEED_ORDER = {"phoneNumber": "88888888", "productOperator": "UNITEL", "rechargeType": "VOICE",
              "productCode": "5000"}


class Failed(Exception):
    pass


def step(name, fn):
    started = time.monotonic()
    try:
        detail = fn()
    except (Failed, requests.RequestException, ValueError, KeyError) as exc:
        print(f"FAIL  {name}: {exc}", flush=True)
        raise SystemExit(1) from None
    print(f"ok    {name} ({int((time.monotonic() - started) * 1000)} ms){': ' + detail if detail else ''}",
          flush=True)


def expect(r, status):
    if r.status_code != status:
        raise Failed(f"HTTP {r.status_code} (expected {status}): {r.text[:200]}")
    return r.json()


def main(argv):
    s = load_settings()
    base = (argv[1] if len(argv) > 1 else f"http://127.0.0.1:{s.PORT}").rstrip("/")
    sandbox = (argv[2] if len(argv) > 2 else f"http://127.0.0.1:{s.SANDBOX_PORT}").rstrip("/")
    print(f"smoke: {base}", flush=True)
    state = {}

    def health():
        body = expect(requests.get(f"{base}/health", timeout=5), 200)
        if body.get("database") != "up":
            raise Failed(f"database is {body.get('database')}")
        return "database up"

    def catalogue():
        items = expect(requests.get(f"{base}/products", params={"operator": "UNITEL"}, timeout=5), 200)["products"]
        if not any(p["productCode"] == "5000" for p in items):
            raise Failed("product 5000 is not in the catalogue (flask elife seed?)")
        return f"{len(items)} products"

    step("health", health)
    step("catalogue", catalogue)
    try:
        requests.get(f"{sandbox}/_health", timeout=2).raise_for_status()
    except requests.RequestException:
        print(f"skip  login -> order -> pay -> recharge: no sandbox at {sandbox} (a real WeChat is needed)")
        return 0

    def login():
        token = expect(requests.post(f"{base}/auth/login", json={"code": f"smoke-{time.time_ns()}"},
                                     timeout=10), 200)["token"]
        state["h"] = {"Authorization": f"Bearer {token}"}

    def order():
        o = expect(requests.post(f"{base}/orders", json=SEED_ORDER, headers=state["h"], timeout=10), 201)
        state["n"] = o["orderNumber"]
        return f"{o['orderNumber']}, {o['totalFee']} fen"

    def payment():
        expect(requests.post(f"{base}/payment/create", json={"orderNumber": state["n"]},
                             headers=state["h"], timeout=10), 200)

    def pay():
        reply = expect(requests.post(f"{sandbox}/wechat/_pay/{state['n']}", timeout=30), 200)
        if reply.get("errcode") != 0:
            raise Failed(f"callback answered {reply}")

    def recharged():
        deadline = time.monotonic() + 15
        while True:
            o = expect(requests.get(f"{base}/orders/{state['n']}", headers=state["h"], timeout=10), 200)
            if o["rechargeStatus"] == RechargeStatus.SUCCESS:
                return "paid and recharged"
            if time.monotonic() > deadline:
                raise Failed(f"payment {o['paymentStatus']}, recharge {o['rechargeStatus']} after 15 s")
            time.sleep(0.2)

    step("login", login)
    step("order", order)
    step("payment", payment)
    step("pay (sandbox)", pay)
    step("recharged", recharged)
    print("smoke: all steps passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
