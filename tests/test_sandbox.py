"""The sandbox remembers across a restart what it was told: a payment it took, a top-up
the operator received, the modes. Otherwise a restart of scripts/run leaves the service's
database with paid orders WeChat's order query no longer knows."""
import os
import signal
import subprocess
import sys

import requests

from conftest import REPO, free_port, stop, wait_http


def _start(port, state_file):
    env = {**os.environ, "ELIFE_ENV": "development", "SANDBOX_PORT": str(port),
           "SANDBOX_STATE_FILE": str(state_file), "SANDBOX_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}
    proc = subprocess.Popen([sys.executable, "-m", "elife.sandbox"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_http(f"http://127.0.0.1:{port}/_health", timeout=30, proc=proc)
    return proc


def _pay(url, call, **body):
    r = requests.post(f"{url}/wechat/_/pay/{call}", json=body, timeout=5)
    r.raise_for_status()
    return r.json()["respdata"]


def _unitel_token(url):
    r = requests.post(f"{url}/unitel/auth", auth=("u", "p"), timeout=5)
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_a_restarted_sandbox_still_knows_what_it_was_told_until_reset(tmp_path):
    port, state_file = free_port(), tmp_path / "sandbox.json"
    url = f"http://127.0.0.1:{port}"
    n = "ORD20260118100000000000001"
    proc = _start(port, state_file)
    try:
        assert _pay(url, "unifiedorder", out_trade_no=n, total_fee=1050, openid="o-customer",
                    attach=f'{{"orderNumber":"{n}"}}')["result_code"] == "SUCCESS"
        assert requests.post(f"{url}/wechat/_pay/{n}", json={"notify": False}, timeout=5).json()["paid"]
        paid = _pay(url, "queryorder", out_trade_no=n)
        r = requests.post(f"{url}/unitel/service/recharge", headers=_unitel_token(url), timeout=5, json={
            "msisdn": "88888888", "card": "SD5000", "vatflag": "0", "vat_register_no": "",
            "transactions": [{"journal_id": n, "amount": "5000", "description": "test", "account": "t"}]})
        assert r.json()["code"] == "000", r.text
        requests.post(f"{url}/unitel/_mode", json={"mode": "fail", "msisdn": "99119911"}, timeout=5)
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to write anything on the way out
        proc.wait()

    proc = _start(port, state_file)
    try:
        again = _pay(url, "queryorder", out_trade_no=n)
        assert (again["trade_state"], again["transaction_id"]) == ("SUCCESS", paid["transaction_id"])
        # WeChat refuses a second payment of a paid order; the operator knows the top-up.
        assert _pay(url, "unifiedorder", out_trade_no=n, total_fee=1050)["err_code"] == "ORDERPAID"
        assert [e["requestId"] for e in requests.get(f"{url}/unitel/_log", timeout=5).json()] == [n]
        status = requests.post(f"{url}/unitel/service/status", headers=_unitel_token(url), timeout=5,
                               json={"journal_id": n}).json()
        assert status["status"] == "SUCCESS"
        modes = requests.post(f"{url}/unitel/_mode", json={"mode": "success"}, timeout=5).json()
        assert modes["modeFor"] == {"99119911": "fail"}

        requests.post(f"{url}/_reset", timeout=5).raise_for_status()
        assert requests.get(f"{url}/unitel/_log", timeout=5).json() == []
    finally:
        stop(proc)

    proc = _start(port, state_file)  # the reset reached the file too
    try:
        assert _pay(url, "queryorder", out_trade_no=n)["err_code"] == "ORDERNOTEXIST"
        assert requests.get(f"{url}/unitel/_log", timeout=5).json() == []
    finally:
        stop(proc)


def test_an_unreadable_state_file_is_one_line_not_a_traceback(tmp_path):
    state_file = tmp_path / "sandbox.json"
    state_file.write_text("{not json")
    env = {**os.environ, "SANDBOX_PORT": str(free_port()), "SANDBOX_STATE_FILE": str(state_file)}
    r = subprocess.run([sys.executable, "-m", "elife.sandbox"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip().startswith(f"sandbox: cannot start: cannot read the state file {state_file}")
    assert "Traceback" not in r.stderr
