"""python -m bench (run it through scripts/bench): the service against the bare stack's
ceiling, paid -> recharged under a burst, the sweep at a million rows, EXPLAIN of the hot
queries and the workers' memory. Writes bench/results.md (or --out).

Everything runs for real on this machine: MariaDB (a database of its own, created and
dropped here), the service under gunicorn with the production settings and
gunicorn.conf.py's own worker count, the sandbox (`python -m elife.sandbox`) as WeChat
and Unitel, and wrk (Debian's) as the load generator.
"""
import argparse
import contextlib
import contextvars
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import requests
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
LUA = REPO / "bench" / "lua"

FULL = dict(mode="full", rounds=2, warmup=3, seconds=12, threads=1, conns=10, users=1000, callback_n=1000,
            callback_warm=40, callback_max_s=120, burst=50, due=1000, small=10_000, big=1_000_000,
            bulk_users=10_000, sweep_repeats=3, slow_n=100, slow_delay=3.0)
QUICK = dict(mode="quick", rounds=1, warmup=1, seconds=2, threads=1, conns=10, users=200, callback_n=100,
             callback_warm=10, callback_max_s=30, burst=50, due=100, small=1_000, big=10_000,
             bulk_users=1_000, sweep_repeats=1, slow_n=100, slow_delay=3.0)

ORDER_BODY = {"phoneNumber": "88888888", "productOperator": "UNITEL", "rechargeType": "VOICE",
              "productCode": "5000"}
SANDBOX_SLOW_READ_TIMEOUT = "0.6"  # the sandbox's `slow` mode sleeps UNITEL_READ_TIMEOUT / 3 = 200 ms


_T0 = time.monotonic()


def say(msg):
    print(f"bench: [{time.monotonic() - _T0:5.1f} s] {msg}", file=sys.stderr, flush=True)


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in (3000, 3001):
            return port


def loadavg():
    return Path("/proc/loadavg").read_text().split()[:3]


def pct(values, p):
    """Nearest-rank percentile (p99 of 50 samples is the largest)."""
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


# -- processes ---------------------------------------------------------------------------

class Procs:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = {}

    def start(self, name, argv, env):
        log = open(self.tmp / f"{name}.log", "ab")
        p = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs[name] = (p, log)
        return p

    def pid(self, name):
        return self.procs[name][0].pid

    def stop(self, name):
        p, log = self.procs.pop(name)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(25)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)


def wait_http(url, proc, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def children(pid):
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid, with_children=True):
    """utime + stime of a process and of its live children, plus what its reaped children
    used (cutime + cstime): a gunicorn master's figure covers workers recycled meanwhile."""
    def stat(p):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0, 0
        return int(f[11]) + int(f[12]), int(f[13]) + int(f[14])
    own, reaped = stat(pid)
    total = own + reaped
    if with_children:
        total += sum(stat(c)[0] for c in children(pid))
    return total / os.sysconf("SC_CLK_TCK")


def mariadb_pid():
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    return int(d.name)
            except OSError:
                pass
    return None


def smaps_rollup(pid):
    """kB figures from /proc/<pid>/smaps_rollup (Pss, Private_Clean, Private_Dirty, ...)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


# -- wrk -----------------------------------------------------------------------------------

class Wrk:
    def __init__(self, cfg, tmp):
        self.cfg = cfg
        self.tmp = tmp
        self.commands = []

    def shown(self, argv):
        text = shlex.join(argv)
        return text.replace(str(self.tmp), "$BENCH_TMP").replace(str(REPO) + "/", "")

    def run(self, url, script, seconds, args=(), marker_dir=None, expect_markers=0, record=True, cpu=None):
        """`cpu`: {name: pid} whose CPU time per answered request is reported."""
        c = self.cfg
        cpu = cpu or {}
        before = {k: cpu_seconds(p) for k, p in cpu.items() if p}
        argv = ["wrk", f"-t{c['threads']}", f"-c{c['conns']}", f"-d{seconds}s", "--timeout", "10s",
                "-s", str(LUA / script), url]
        if args:
            argv += ["--", *map(str, args)]
        if record:
            self.commands.append(f"BENCH_LUA_DIR=bench/lua {self.shown(argv)}")
        env = {**os.environ, "BENCH_LUA_DIR": str(LUA)}
        p = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
        if marker_dir is not None:
            # The callback script stops each thread once its notices are sent; end wrk's
            # fixed-length sleep then (SIGINT: wrk prints its summary as usual).
            deadline = time.monotonic() + seconds + 5
            while p.poll() is None and time.monotonic() < deadline:
                if len(list(Path(marker_dir).glob("done-*"))) >= expect_markers:
                    p.send_signal(signal.SIGINT)
                    break
                time.sleep(0.05)
        try:
            out, _ = p.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        m = re.search(r"^BENCH_JSON (.*)$", out, re.M)
        if not m:
            raise RuntimeError(f"wrk gave no summary:\n{out[-2000:]}")
        r = json.loads(m.group(1))
        after = {k: cpu_seconds(p) for k, p in cpu.items() if p}
        r["cpu_ms"] = {k: (after[k] - before[k]) * 1000 / max(1, r["requests"]) for k in before}
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
        r["non2xx"] = r["errors"]["status"]
        r["socket_errors"] = sum(v for k, v in r["errors"].items() if k != "status")
        return r


# -- the benchmark ------------------------------------------------------------------------

class Bench:
    def __init__(self, cfg, args):
        self.cfg = cfg
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="elife-bench-"))
        self.procs = Procs(self.tmp)
        self.wrk = Wrk(cfg, self.tmp)
        self.results = {}
        self.notes = []
        self.ports = {"service": free_port(), "ceiling": free_port(), "sandbox": free_port()}
        server = sa.engine.make_url(args.server)
        self.server_url = server.set(database="")
        self.db_name = args.database
        self.db_url = server.set(database=self.db_name).render_as_string(hide_password=False)
        self.started = datetime.now(timezone.utc)
        self.load_start = None

    # -- settings --------------------------------------------------------------------
    def settings_env(self):
        """Every setting given explicitly (a developer's .env cannot change the run):
        the defaults, then production and what production requires, pointing WeChat and
        Unitel at the sandbox."""
        from elife.config import Settings
        env = {f.name: str(f.default) for f in fields(Settings)}
        sandbox = f"http://127.0.0.1:{self.ports['sandbox']}"
        env.update({
            "ELIFE_ENV": "production",
            "DATABASE_URL": self.db_url,
            "PORT": str(self.ports["service"]),
            "SANDBOX_PORT": str(self.ports["sandbox"]),
            "SANDBOX_SERVICE_URL": f"http://127.0.0.1:{self.ports['service']}",
            # In memory: rewriting its file after every change would be the bench's bottleneck.
            "SANDBOX_STATE_FILE": ":memory:",
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "ADMIN_TOKEN": "bench-admin-token-not-for-production",
            "WECHAT_API_BASE": f"{sandbox}/wechat",
            "WECHAT_APPID": "wxsandbox000000000",
            "WECHAT_MCH_ID": "1900000000",
            "WECHAT_ENV_ID": "bench-env",
            "UNITEL_API_URL": f"{sandbox}/unitel",
            "UNITEL_USERNAME": "bench",
            "UNITEL_PASSWORD": "bench",
            "LOG_DIR": str(self.tmp / "logs"),
            # Raised so thousands of orders a second from 1000 customers are not 429s;
            # the limit check itself (both windows, one upsert) still runs on every order.
            "LIMIT_ORDERS_PER_MINUTE": "1000000",
            "LIMIT_ORDERS_PER_DAY": "1000000",
        })
        return env

    def process_env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if k not in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "FLASK_RUN_FROM_CLI")}
        env.update(self.settings_env())
        env.update({"GUNICORN_ACCESS_LOG": "", "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"})
        env.update(extra)
        return env

    # -- setup -----------------------------------------------------------------------
    def create_database(self):
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.db_name):
            raise SystemExit("--database must be letters, digits and _")
        engine = sa.create_engine(self.server_url)
        with engine.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS `{self.db_name}`"))
            c.execute(sa.text(f"CREATE DATABASE `{self.db_name}` CHARACTER SET utf8mb4"))
            self.mariadb_version = c.execute(sa.text("SELECT VERSION()")).scalar()
        engine.dispose()

    def mariadb_started(self):
        """When the MariaDB server started (from its Uptime), to notice a restart."""
        engine = sa.create_engine(self.server_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as c:
                up = int(c.execute(sa.text("SHOW GLOBAL STATUS LIKE 'Uptime'")).one()[1])
        except Exception:  # noqa: BLE001 -- down right now: say so
            return None
        finally:
            engine.dispose()
        return time.time() - up

    def check_mariadb(self, section):
        now = self.mariadb_started()
        if now is None or abs(now - self.db_started) > 5:
            when = "is down" if now is None else \
                f"restarted at {datetime.fromtimestamp(now, timezone.utc).strftime('%H:%M:%S')} UTC"
            self.notes.append(f"The MariaDB server {when}, during or before section {section} (something else "
                              f"on this machine restarted it): that section's figures are disturbed.")
            if now is not None:
                self.db_started = now
            self.disturbed = True

    def drop_database(self):
        engine = sa.create_engine(self.server_url)
        with engine.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS `{self.db_name}`"))
        engine.dispose()

    def build_app(self):
        os.environ.update(self.settings_env())
        from flask_migrate import upgrade

        from elife import create_app
        from elife.ops.seed import seed
        # In-process, the top-up runs in the answering thread (RECHARGE_THREADS=0) when the
        # response is closed (buffered=True below): the callback's statements are all captured.
        self.app = create_app({"RECHARGE_THREADS": "0"})
        import logging
        root = logging.getLogger("elife")
        for h in list(root.handlers):  # keep the log files, not the console copy
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                root.removeHandler(h)
        with self.app.app_context():
            upgrade()
            seed()
            from elife.extensions import db
            self.db = db
            self.product_id = db.session.execute(sa.text(
                "SELECT id FROM products WHERE product_code='5000' AND recharge_type='VOICE'")).scalar()
            db.session.commit()

    def make_customers(self):
        """`users` customers, each with a signed token as /auth/login would give it."""
        from elife.api.auth import issue_token
        n = self.cfg["users"]
        with self.app.app_context():
            db = self.db
            with db.engine.begin() as c:
                c.execute(sa.text(f"INSERT INTO users (id, openid, created_at, updated_at) "
                                  f"SELECT seq, CONCAT('bench-customer-', seq), UTC_TIMESTAMP(3), "
                                  f"UTC_TIMESTAMP(3) FROM seq_1_to_{n}"))
            self.tokens = {}
            with self.app.test_request_context():
                for uid in range(1, n + 1):
                    self.tokens[uid] = issue_token(SimpleNamespace(id=uid, openid=f"bench-customer-{uid}"))[0]
        self.tokens_file = self.tmp / "tokens.txt"
        self.tokens_file.write_text("\n".join(self.tokens.values()) + "\n")

    def start_servers(self):
        sp = self.ports
        self.sandbox_url = f"http://127.0.0.1:{sp['sandbox']}"
        self.service_url = f"http://127.0.0.1:{sp['service']}"
        self.ceiling_url = f"http://127.0.0.1:{sp['ceiling']}"
        sb = self.procs.start("sandbox", [sys.executable, "-m", "elife.sandbox"],
                              self.process_env(UNITEL_READ_TIMEOUT=SANDBOX_SLOW_READ_TIMEOUT))
        wait_http(f"{self.sandbox_url}/_health", sb)
        gun = [sys.executable, "-m", "gunicorn"]
        svc = self.procs.start("service", gun + ["wsgi:app", "-c", "gunicorn.conf.py"], self.process_env())
        ceil = self.procs.start("ceiling", gun + ["bench.ceiling:app", "-c", "gunicorn.conf.py"],
                                self.process_env(PORT=str(sp["ceiling"])))
        wait_http(f"{self.service_url}/health", svc)
        wait_http(f"{self.ceiling_url}/products/{self.product_id}", ceil)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.workers = len(children(svc.pid))
            if self.workers and self.workers == len(children(ceil.pid)):
                break
            time.sleep(0.2)
        env = self.settings_env()
        shown = " ".join(f"{k}={shlex.quote(env[k])}" for k in (
            "ELIFE_ENV", "DATABASE_URL", "SECRET_KEY", "ADMIN_TOKEN", "WECHAT_API_BASE", "WECHAT_APPID",
            "WECHAT_MCH_ID", "WECHAT_ENV_ID", "UNITEL_API_URL", "UNITEL_USERNAME", "UNITEL_PASSWORD",
            "LIMIT_ORDERS_PER_MINUTE", "LIMIT_ORDERS_PER_DAY"))
        tmp = str(self.tmp)
        self.server_commands = [
            "# every other setting at its default (all given explicitly, so no .env applies); "
            "LOG_DIR=$BENCH_TMP/logs; WEB_CONCURRENCY unset",
            f"{shown} PORT={sp['sandbox']} SANDBOX_PORT={sp['sandbox']} "
            f"SANDBOX_SERVICE_URL={self.service_url} UNITEL_READ_TIMEOUT={SANDBOX_SLOW_READ_TIMEOUT} "
            f"SANDBOX_STATE_FILE=:memory: python -m elife.sandbox",
            f"{shown} PORT={sp['service']} SANDBOX_PORT={sp['sandbox']} GUNICORN_ACCESS_LOG= "
            f"gunicorn wsgi:app -c gunicorn.conf.py",
            f"{shown} PORT={sp['ceiling']} GUNICORN_ACCESS_LOG= gunicorn bench.ceiling:app -c gunicorn.conf.py",
        ]
        self.server_commands = [c.replace(tmp, "$BENCH_TMP") for c in self.server_commands]

    # -- HTTP helpers ----------------------------------------------------------------
    def _session(self):
        local = getattr(self, "_local", None)
        if local is None:
            local = self._local = threading.local()
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def api_order(self, uid):
        r = self._session().post(f"{self.service_url}/orders", json=ORDER_BODY, timeout=30,
                                 headers={"Authorization": f"Bearer {self.tokens[uid]}"})
        if r.status_code != 201:
            raise RuntimeError(f"POST /orders: {r.status_code} {r.text[:200]}")
        return r.json()["orderNumber"]

    def api_create_payment(self, uid, n):
        r = self._session().post(f"{self.service_url}/payment/create", json={"orderNumber": n}, timeout=30,
                                 headers={"Authorization": f"Bearer {self.tokens[uid]}"})
        if r.status_code != 200:
            raise RuntimeError(f"POST /payment/create: {r.status_code} {r.text[:200]}")

    def sandbox_paid_notice(self, n):
        s = self._session()
        r = s.post(f"{self.sandbox_url}/wechat/_pay/{n}", json={"notify": False}, timeout=30)
        r.raise_for_status()
        r = s.get(f"{self.sandbox_url}/wechat/_notice/{n}", timeout=30)
        r.raise_for_status()
        return r.json()

    def sandbox_mode(self, mode):
        requests.post(f"{self.sandbox_url}/unitel/_mode", json={"mode": mode}, timeout=10).raise_for_status()

    # -- 1. the ceiling and the service --------------------------------------------------
    def section_throughput(self):
        c = self.cfg
        ceiling = f"{self.ceiling_url}/products/{self.product_id}"
        products = f"{self.service_url}/products?operator=UNITEL&rechargeType=VOICE"
        body = json.dumps(ORDER_BODY, separators=(",", ":"))
        orders_args = (self.tokens_file, body, c["threads"])
        runs = {"ceiling": [], "products": [], "orders": [], "callback": []}

        def measure(name, url, script, args=(), app="service"):
            self.wrk.run(url, script, c["warmup"], args, record=False)
            say(f"wrk {name} ({c['seconds']} s)")
            runs[name].append(self.wrk.run(url, script, c["seconds"], args, cpu=self.cpu_pids(app)))

        # Rounds of ceiling, products, orders, callback, then the ceiling once more: each
        # figure is the mean of its rounds, beside the mean of the ceilings around them.
        for i in range(c["rounds"]):
            say(f"round {i + 1} of {c['rounds']}")
            measure("ceiling", ceiling, "get.lua", app="ceiling")
            measure("products", products, "get.lua")
            measure("orders", self.service_url, "orders.lua", orders_args)
            runs["callback"].append(self.callback_run())
        measure("ceiling", ceiling, "get.lua", app="ceiling")
        self.results["throughput"] = runs

    def cpu_pids(self, app):
        return {"app": self.procs.pid(app), "sandbox": self.procs.pid("sandbox"), "mariadb": mariadb_pid()}

    def callback_run(self):
        c = self.cfg
        n_total = c["callback_n"] + c["callback_warm"]
        say(f"preparing {n_total} paid orders and their notices")
        with self.app.app_context():
            rows = self.db.session.execute(sa.text(
                "SELECT order_number, user_id FROM orders WHERE payment_status='unpaid' "
                "AND user_id <= :u ORDER BY id LIMIT :n"), {"u": c["users"], "n": n_total}).all()
            self.db.session.commit()
        orders = [(n, uid) for n, uid in rows]
        with ThreadPoolExecutor(8) as ex:
            missing = n_total - len(orders)
            uids = [(i % c["users"]) + 1 for i in range(missing)]
            orders += list(zip(ex.map(self.api_order, uids), uids))

            def prepare(item):
                n, uid = item
                self.api_create_payment(uid, n)
                return self.sandbox_paid_notice(n)
            notices = list(ex.map(prepare, orders))
        warm, measured = notices[:c["callback_warm"]], notices[c["callback_warm"]:]
        self.sandbox_mode("success")
        # Warm every worker's connections to WeChat and Unitel (and the Unitel token).
        with ThreadPoolExecutor(c["conns"]) as ex:
            list(ex.map(lambda nt: self._session().post(
                self.service_url + nt["path"], data=json.dumps(nt["body"]), headers=nt["headers"],
                timeout=30).raise_for_status(), warm))
        k = len(list(self.tmp.glob("notices-*.txt")))
        path = self.tmp / f"notices-{k}.txt"
        with path.open("w") as f:
            for nt in measured:
                f.write(f"{nt['path']}\t{nt['headers'].get('X-WX-OPENID', '')}\t"
                        f"{json.dumps(nt['body'], separators=(',', ':'))}\n")
        markers = self.tmp / f"markers-{k}"
        markers.mkdir()
        say(f"wrk callback ({len(measured)} notices)")
        r = self.wrk.run(self.service_url, "callback.lua", c["callback_max_s"],
                         (path, c["threads"], markers), marker_dir=markers,
                         expect_markers=c["threads"], cpu=self.cpu_pids("service"))
        # The requests in flight when wrk stopped still finish in the service: wait for
        # them (a minute at most) before counting, and before the next measurement.
        numbers = [nt["body"]["outTradeNo"] for nt in measured]
        deadline = time.monotonic() + 60
        last = None
        while True:
            with self.app.app_context():
                got = dict(self.db.session.execute(sa.text(
                    "SELECT recharge_status, COUNT(*) FROM orders WHERE order_number IN :ns GROUP BY 1")
                    .bindparams(sa.bindparam("ns", expanding=True)), {"ns": numbers}).all())
                delivered = self.db.session.execute(sa.text(
                    "SELECT COUNT(DISTINCT order_number) FROM payment_notices WHERE order_number IN :ns")
                    .bindparams(sa.bindparam("ns", expanding=True)), {"ns": numbers}).scalar()
                self.db.session.commit()
            now = (got.get("success", 0), delivered)
            if (now[0] == now[1] and now == last) or time.monotonic() > deadline:
                break
            last = now
            time.sleep(0.3)
        r["notices"] = len(measured)
        r["delivered"] = delivered
        r["recharged"] = got.get("success", 0)
        r["states"] = got
        return r

    # -- 2. paid -> recharged under a burst ----------------------------------------------
    def section_burst(self):
        c = self.cfg
        n = c["burst"]
        say(f"{n} payments at once, operator answering in 200 ms")
        uids = list(range(1, n + 1))
        with ThreadPoolExecutor(8) as ex:
            numbers = list(ex.map(self.api_order, uids))
            list(ex.map(lambda a: self.api_create_payment(*a), zip(uids, numbers)))
        self.sandbox_mode("slow")
        barrier = threading.Barrier(n)
        answers = {}

        def pay(num):
            s = requests.Session()
            barrier.wait()
            t = time.time()
            r = s.post(f"{self.sandbox_url}/wechat/_pay/{num}", json={"notify": True}, timeout=60)
            answers[num] = (t, time.time(), r.status_code)

        threads = [threading.Thread(target=pay, args=(num,)) for num in numbers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.sandbox_mode("success")
        self.wait_settled(numbers)  # the top-ups run after the answers
        with self.app.app_context():
            rows = self.db.session.execute(sa.text(
                "SELECT order_number, recharge_status, paid_at, recharge_at, recharged_at, "
                "TIMESTAMPDIFF(MICROSECOND, paid_at, recharge_at) AS to_claim, "
                "TIMESTAMPDIFF(MICROSECOND, paid_at, recharged_at) AS to_success "
                "FROM orders WHERE order_number IN :ns").bindparams(sa.bindparam("ns", expanding=True)),
                {"ns": numbers}).mappings().all()
            self.db.session.commit()
        fired = min(a[0] for a in answers.values())
        ok = [r for r in rows if r["recharge_status"] == "success"]

        def stats(vals):
            return {"p50": pct(vals, 50), "p99": pct(vals, 99), "max": max(vals)} if vals else None
        to_claim = [r["to_claim"] / 1e6 for r in ok]
        to_success = [r["to_success"] / 1e6 for r in ok]
        # The customer's view: from the moment the 50 paid (the sandbox was asked) to success.
        e2e = [(r["recharged_at"].replace(tzinfo=timezone.utc).timestamp() - fired) for r in ok]
        self.results["burst"] = {
            "n": n, "success": len(ok), "statuses": sorted({r["recharge_status"] for r in rows}),
            "http": sorted({a[2] for a in answers.values()}),
            "to_claim": stats(to_claim), "to_success": stats(to_success), "from_payment": stats(e2e),
        }

    def wait_settled(self, numbers, seconds=60):
        """Until none of these orders is pending or processing (the top-ups run after
        WeChat's answer), `seconds` at most."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.app.app_context():
                left = self.db.session.execute(sa.text(
                    "SELECT COUNT(*) FROM orders WHERE order_number IN :ns "
                    "AND recharge_status IN ('pending', 'processing')")
                    .bindparams(sa.bindparam("ns", expanding=True)), {"ns": numbers}).scalar()
                self.db.session.commit()
            if not left:
                return
            time.sleep(0.1)

    # -- 2b. a slow operator ---------------------------------------------------------------
    def section_slow_operator(self):
        """WeChat's notices answered at once while the operator takes seconds: the top-up
        runs after the answer (issue 14)."""
        c = self.cfg
        n, delay = c["slow_n"], c["slow_delay"]
        say(f"{n} payments at once, operator answering in {delay:g} s")
        uids = [(i % c["users"]) + 1 for i in range(n)]
        with ThreadPoolExecutor(8) as ex:
            numbers = list(ex.map(self.api_order, uids))
            list(ex.map(lambda a: self.api_create_payment(*a), zip(uids, numbers)))
            notices = list(ex.map(self.sandbox_paid_notice, numbers))
        requests.post(f"{self.sandbox_url}/unitel/_mode", json={"mode": "slow", "delay": delay},
                      timeout=10).raise_for_status()
        barrier = threading.Barrier(n)
        answers = {}

        def deliver(notice):
            s = requests.Session()
            body = json.dumps(notice["body"])
            barrier.wait()
            t = time.time()
            r = s.post(self.service_url + notice["path"], data=body, headers=notice["headers"], timeout=60)
            answers[notice["body"]["outTradeNo"]] = (t, time.time(), r.status_code, r.text)

        threads = [threading.Thread(target=deliver, args=(nt,)) for nt in notices]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fired = min(a[0] for a in answers.values())
        self.wait_settled(numbers, seconds=60 + delay)
        self.sandbox_mode("success")
        with self.app.app_context():
            rows = self.db.session.execute(sa.text(
                "SELECT order_number, recharge_status, recharged_at FROM orders WHERE order_number IN :ns")
                .bindparams(sa.bindparam("ns", expanding=True)), {"ns": numbers}).mappings().all()
            self.db.session.commit()
        log = requests.get(f"{self.sandbox_url}/unitel/_log", timeout=30).json()
        mine = set(numbers)
        sent = [e for e in log if e.get("requestId") in mine]
        waits = [r["recharged_at"].replace(tzinfo=timezone.utc).timestamp() - fired
                 for r in rows if r["recharge_status"] == "success"]
        answer_s = [a[1] - a[0] for a in answers.values()]

        def stats(vals):
            return {"p50": pct(vals, 50), "p99": pct(vals, 99), "max": max(vals)} if vals else None
        self.results["slow_operator"] = {
            "n": n, "delay": delay, "answer": stats(answer_s), "over_5s": sum(1 for v in answer_s if v > 5),
            "http": sorted({a[2] for a in answers.values()}),
            "ok_replies": sum(1 for a in answers.values() if a[2] == 200 and '"errcode":0' in a[3].replace(" ", "")),
            "wait": stats(waits), "success": len(waits), "topups": len(sent),
            "topup_orders": len({e["requestId"] for e in sent}),
        }

    # -- 5. memory -----------------------------------------------------------------------
    def section_memory(self):
        out = []
        for name in ("service", "ceiling"):
            master = self.procs.pid(name)
            for role, pid in [("master", master)] + [("worker", p) for p in children(master)]:
                st = proc_status(pid)
                sm = smaps_rollup(pid)
                out.append({"app": name, "role": role, "pid": pid,
                            "pss_mb": sm.get("Pss", 0) / 1024,
                            "uss_mb": (sm.get("Private_Clean", 0) + sm.get("Private_Dirty", 0)) / 1024,
                            "rss_mb": int(st["VmRSS"].split()[0]) / 1024,
                            "anon_mb": int(st.get("RssAnon", "0 kB").split()[0]) / 1024,
                            "hwm_mb": int(st["VmHWM"].split()[0]) / 1024})
        self.results["memory"] = out
        self.results["workers_booted"] = self.worker_boots()

    def worker_boots(self):
        """Workers gunicorn started after the first ones, and why (from its log)."""
        out = {}
        for name in ("service", "ceiling"):
            text = (self.tmp / f"{name}.log").read_text(errors="replace")
            out[name] = {"booted": text.count("Booting worker") - self.workers,
                         "max_requests": text.count("Autorestarting worker after current request"),
                         "timeouts": text.count("WORKER TIMEOUT")}
        return out

    # -- 3. the sweep at scale -------------------------------------------------------------
    BULK_ORDERS = """
        INSERT INTO orders (order_number, user_id, phone_number, product_operator, recharge_type,
            product_code, product_price_tg, product_price_rmb, total_fee, exchange_rate,
            payment_status, recharge_status, transaction_id, paid_at, recharge_at, recharged_at,
            refunded_at, payment_created_at, anomaly_reason, created_at, updated_at, version,
            submit_count, closed_at)
        SELECT CONCAT('ORD', LPAD(seq, 20, '0')), {ub} + seq % {nu},
            CONCAT('88', LPAD(seq % 1000000, 6, '0')), 'UNITEL', 'VOICE', '5000', 5000, 10.50, 1050,
            0.00210000,
            CASE WHEN due THEN 'paid' WHEN seq % 20 = 0 THEN 'closed' WHEN seq % 97 = 0 THEN 'refunded'
                 ELSE 'paid' END,
            CASE WHEN due OR seq % 20 = 0 THEN 'pending' WHEN seq % 97 = 0 THEN 'failed'
                 ELSE 'success' END,
            CASE WHEN seq % 20 = 0 AND NOT due THEN NULL ELSE CONCAT('4200', LPAD(seq, 24, '0')) END,
            CASE WHEN seq % 20 = 0 AND NOT due THEN NULL ELSE c + INTERVAL 60 SECOND END,
            CASE WHEN due OR seq % 20 = 0 THEN NULL ELSE c + INTERVAL 60200000 MICROSECOND END,
            CASE WHEN due OR seq % 20 = 0 OR seq % 97 = 0 THEN NULL ELSE c + INTERVAL 60500000 MICROSECOND END,
            CASE WHEN NOT due AND seq % 20 != 0 AND seq % 97 = 0 THEN c + INTERVAL 61 SECOND END,
            CASE WHEN seq % 40 = 0 AND NOT due THEN NULL ELSE c + INTERVAL 10 SECOND END,
            CASE WHEN seq % 1000 = 0 AND NOT due THEN 'amount_mismatch' END,
            c, c + INTERVAL 61 SECOND,
            CASE WHEN due THEN 1 WHEN seq % 20 = 0 THEN 0 WHEN seq % 97 = 0 THEN 5 ELSE 4 END,
            CASE WHEN due OR seq % 20 = 0 THEN 0 ELSE 1 END,
            CASE WHEN seq % 20 = 0 AND NOT due THEN c + INTERVAL 7300 SECOND END
        FROM (SELECT seq, seq > {rows} - {due} AS due,
                     CASE WHEN seq > {rows} - {due} THEN UTC_TIMESTAMP(3) - INTERVAL 11 MINUTE
                          ELSE UTC_TIMESTAMP(3) - INTERVAL (86400 + ({rows} - seq) * 31449600 DIV {rows}) SECOND
                     END AS c
              FROM seq_1_to_{rows}) s"""
    BULK_USER_BASE = 10_000_000
    AUDIT_TABLES = ("payment_notices", "operator_calls", "order_events", "idempotency_keys", "rate_limits")

    def load_table(self, rows):
        """Empty the tables, bulk-load `rows` orders, ANALYZE. Its own connection: the
        service's engine gives up on a statement after 30 s (read_timeout)."""
        c = self.cfg
        engine = sa.create_engine(self.db_url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SET SESSION foreign_key_checks = 0"))
                for t in ("orders",) + self.AUDIT_TABLES:
                    conn.execute(sa.text(f"TRUNCATE TABLE {t}"))
                conn.execute(sa.text("SET SESSION foreign_key_checks = 1"))
            t = time.monotonic()
            with engine.begin() as conn:
                conn.execute(sa.text("SET SESSION unique_checks = 0"))
                conn.execute(sa.text("SET SESSION foreign_key_checks = 0"))
                conn.execute(sa.text(self.BULK_ORDERS.format(
                    ub=self.BULK_USER_BASE, nu=c["bulk_users"], rows=rows, due=c["due"])))
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE TABLE orders")).all()
            return time.monotonic() - t
        finally:
            engine.dispose()

    def reset_due(self, rows):
        """Make the `due` orders due again (after a sweep recharged them), and forget their
        top-ups at the fake operator, so the next sweep does the same work."""
        with self.app.app_context():
            with self.db.engine.begin() as conn:
                for t in self.AUDIT_TABLES:
                    conn.execute(sa.text(f"DELETE FROM {t}"))
                conn.execute(sa.text(
                    "UPDATE orders SET recharge_status='pending', recharge_at=NULL, recharged_at=NULL, "
                    "submit_count=0, version=1, anomaly_reason=NULL, anomaly_details=NULL "
                    "WHERE id > :first"), {"first": rows - self.cfg["due"]})
        requests.post(f"{self.sandbox_url}/_reset", timeout=10).raise_for_status()

    def one_sweep(self, capture):
        from elife import services
        from elife.fulfil import sweep
        with self.app.app_context():
            with capture.recording("sweep"):
                started = time.monotonic()
                summary = sweep.run(services.current())
                wall = time.monotonic() - started
        return {"seconds": wall, "summary": summary.as_dict()}

    def section_sweep(self):
        c = self.cfg
        with self.app.app_context():
            with self.db.engine.begin() as conn:
                conn.execute(sa.text(
                    f"INSERT INTO users (id, openid, created_at, updated_at) SELECT {self.BULK_USER_BASE} + seq - 1, "
                    f"CONCAT('bulk-', seq), UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) FROM seq_1_to_{c['bulk_users']}"))
        out = {}
        self.capture = Capture(self)
        for label, rows in (("small", c["small"]), ("big", c["big"])):
            say(f"loading {rows:,} orders ({c['due']:,} due)")
            load_s = self.load_table(rows)
            runs = []
            for i in range(c["sweep_repeats"]):
                if i:
                    self.reset_due(rows)
                else:
                    requests.post(f"{self.sandbox_url}/_reset", timeout=10).raise_for_status()
                self.capture.reset()
                say(f"sweep over {rows:,} rows (run {i + 1} of {c['sweep_repeats']})")
                runs.append(self.one_sweep(self.capture))
            out[label] = {"rows": rows, "load_s": load_s, "runs": runs,
                          "median_s": statistics.median(r["seconds"] for r in runs)}
        out["ratio"] = out["big"]["median_s"] / out["small"]["median_s"]
        self.results["sweep"] = out

    # -- 4. EXPLAIN on the big table -------------------------------------------------------
    def section_explain(self):
        from elife.ops import reports
        from elife.api.auth import issue_token
        cap = self.capture  # holds the last big sweep's statements
        app = self.app
        with app.app_context():
            # An abandoned order of the history, made a fresh unpaid one (the history's
            # abandoned orders were closed after ORDER_TTL_SECONDS, as the sweep does).
            row = self.db.session.execute(sa.text(
                "SELECT id, order_number, user_id FROM orders WHERE payment_status='closed' "
                "AND anomaly_reason IS NULL ORDER BY id DESC LIMIT 1")).one()
            self.db.session.execute(sa.text(
                "UPDATE orders SET payment_status='unpaid', closed_at=NULL, created_at=UTC_TIMESTAMP(3), "
                "version=0 WHERE id = :id"), {"id": row.id})
            self.db.session.commit()
        _, n, uid = row
        client = app.test_client()
        with app.test_request_context():
            token = issue_token(SimpleNamespace(id=uid, openid=f"bulk-{uid - self.BULK_USER_BASE + 1}"))[0]
        auth = {"Authorization": f"Bearer {token}"}
        with app.app_context():
            r = client.post("/payment/create", json={"orderNumber": n}, headers=auth)
            assert r.status_code == 200, r.get_data(as_text=True)
        notice = self.sandbox_paid_notice(n)
        with app.app_context():
            with cap.recording("callback"):
                r = client.post(notice["path"], data=json.dumps(notice["body"]), headers=notice["headers"],
                                buffered=True)
                assert r.status_code == 200, r.get_data(as_text=True)
            with cap.recording("order list"):
                r = client.get("/orders", headers=auth)
                assert r.status_code == 200, r.get_data(as_text=True)
            with cap.recording("reports"):
                reports.all_reports(has_status_query=True)
            with app.app_context():
                state = self.db.session.execute(sa.text(
                    "SELECT payment_status, recharge_status FROM orders WHERE order_number=:n"), {"n": n}).one()
                self.db.session.commit()
            if tuple(state) != ("paid", "success"):
                self.notes.append(f"the EXPLAIN callback's order ended {tuple(state)}, not (paid, success)")
            self.results["explain"] = cap.explain_all()
            self.results["explain_rows"] = self.db.session.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar()
            self.db.session.commit()

    # -- run ---------------------------------------------------------------------------
    def wait_for_quiet(self):
        a = self.args
        if a.wait_load is None:
            return
        deadline = time.monotonic() + a.wait_max
        while True:
            one = float(loadavg()[0])
            if one < a.wait_load:
                say(f"load average {one} < {a.wait_load}: starting")
                return
            if time.monotonic() >= deadline:
                say(f"load average {one} still >= {a.wait_load} after {a.wait_max} s: starting anyway")
                self.notes.append(f"The machine did not quiet down: the 1-minute load average was still "
                                  f"{one} after waiting {a.wait_max} s for it to fall below {a.wait_load}.")
                return
            say(f"load average {one} >= {a.wait_load}; waiting")
            time.sleep(30)

    def run(self):
        t0 = time.monotonic()
        ok = False
        self.disturbed = False
        self.wait_for_quiet()
        self.load_start = loadavg()
        self.started = datetime.now(timezone.utc)
        try:
            say(f"database {self.db_name}: create, migrate, seed, {self.cfg['users']} customers")
            self.create_database()
            self.db_started = self.mariadb_started()
            self.build_app()
            self.make_customers()
            say("starting the sandbox, the service and the ceiling")
            self.start_servers()
            self.section_throughput()
            self.check_mariadb("1")
            self.section_burst()
            self.check_mariadb("2")
            self.section_slow_operator()
            self.check_mariadb("2b")
            self.section_memory()
            say("EXPLAIN and the sweep: stopping the gunicorns")
            self.procs.stop("service")
            self.procs.stop("ceiling")
            self.section_sweep()
            self.check_mariadb("3")
            self.section_explain()
            self.check_mariadb("4")
            ok = True
        finally:
            self.procs.stop_all()
            timeouts = sum(v["timeouts"] for v in self.results.get("workers_booted", {}).values())
            if timeouts:
                self.notes.append(f"gunicorn killed {timeouts} worker(s) stuck past its 30 s timeout during "
                                  "sections 1–2: the figures of those runs include the stall.")
            if ok and not timeouts and not self.disturbed:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                say(f"the logs are in {self.tmp}")
            if not self.args.keep_database:
                with contextlib.suppress(Exception):
                    with self.app.app_context():
                        self.db.engine.dispose()
                self.drop_database()
        self.load_end = loadavg()
        self.elapsed = time.monotonic() - t0
        from bench.report import write
        write(self, Path(self.args.out))
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(
                {"config": self.cfg, "results": self.results, "notes": self.notes,
                 "load_start": self.load_start, "load_end": self.load_end, "seconds": self.elapsed},
                default=str, indent=1))
        say(f"wrote {self.args.out} in {self.elapsed:.0f} s")


class Capture:
    """The statements on `orders` that the code actually sends, labelled by what sent
    them (as tests/test_explain.py captures them)."""
    current = contextvars.ContextVar("bench_capture_phase", default=None)

    def __init__(self, bench):
        self.bench = bench
        self.sent = []
        from elife.ops import reports
        from elife.fulfil import sweep
        self._wrap(sweep, "_page", self._page_label)
        for fn in ("success_rate", "anomalies_by_day", "recharge_delay", "pending_compensation"):
            self._wrap(reports, fn, lambda *a, _fn=fn, **k: f"report: {_fn}")
        with bench.app.app_context():
            from elife.extensions import db
            sa.event.listen(db.engine, "before_cursor_execute", self._listener)

    def _wrap(self, module, name, labeller):
        """Label the statements sent inside module.name (the bench's process only)."""
        orig = getattr(module, name)
        cap = self

        def wrapped(*a, **k):
            token = cap.label.set(labeller(*a, **k))
            try:
                return orig(*a, **k)
            finally:
                cap.label.reset(token)
        setattr(module, name, wrapped)

    label = contextvars.ContextVar("bench_capture_label", default=None)

    def _page_label(self, where, key_col, after, batch):
        from elife.fulfil import sweep
        from elife.timeutil import utcnow
        names = {str(w): name for name, w, _ in sweep.selections(utcnow(), self.bench.app.config["SETTINGS"])}
        return f"sweep page: {names.get(str(where), '?')}" + (" (next page)" if after else "")

    def reset(self):
        self.sent = []

    @contextlib.contextmanager
    def recording(self, phase):
        token = self.current.set(phase)
        try:
            yield
        finally:
            self.current.reset(token)

    def _listener(self, conn, cursor, statement, parameters, context, executemany):
        phase = self.current.get()
        if phase is None:
            return
        s = statement.lstrip()
        head = s[:6].upper()
        if head == "SELECT" and re.search(r"\bFROM orders\b", s) or head == "UPDATE" and s.startswith("UPDATE orders"):
            self.sent.append((phase, self.label.get() or describe(s), statement, parameters))

    def explain_all(self):
        seen, out = set(), []
        for phase, label, statement, params in self.sent:
            key = (label, statement)
            if key in seen:
                continue
            seen.add(key)
            out.append({"phase": phase, "label": label, "sql": statement, "params": params,
                        "explain": self._run("EXPLAIN ", statement, params),
                        "analyze": self._run("ANALYZE ", statement, params)})
        return out

    def _run(self, prefix, statement, params):
        from elife.extensions import db
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("BEGIN")
            cur.execute(prefix + statement, params)  # ANALYZE runs it: rolled back below
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
            cur.execute("ROLLBACK")
            return rows
        finally:
            raw.close()


def describe(statement):
    s = " ".join(statement.split())
    if s.startswith("UPDATE orders"):
        where = s.partition(" WHERE ")[2]
        if "recharge_at IS NULL" in where:
            return "claim UPDATE (recharge_paid_order)"
        if "payment_status = " in where and "recharge_status" not in where:
            return "paid UPDATE (confirm_paid)"
        if "recharge_status IN" in where:
            return "settle UPDATE (_transition)"
        return "UPDATE by order number"
    if "WHERE orders.order_number =" in s and "orders.user_id =" not in s:
        return "lookup by order number"
    if "orders.user_id =" in s:
        return "customer's orders (orders.user_id)"
    return "SELECT"


def main(argv=None):
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small N, short wrk runs, 10k rows instead of 1M")
    p.add_argument("--out", default=str(REPO / "bench" / "results.md"), help="where to write the results")
    p.add_argument("--server", default="mysql+pymysql://root@127.0.0.1:3306",
                   help="MariaDB server (a URL without a database)")
    p.add_argument("--database", default="elife_bench", help="database to create, use and drop")
    p.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    p.add_argument("--seconds", type=int, metavar="S", help="length of each measured wrk run")
    p.add_argument("--keep-database", action="store_true", help="leave the database for a look afterwards")
    p.add_argument("--wait-load", type=float, default=None, metavar="L",
                   help="first wait until the 1-minute load average is below L (polled every 30 s)")
    p.add_argument("--wait-max", type=int, default=900, metavar="S", help="wait at most S seconds (900)")
    args = p.parse_args(argv)
    args.argv = ["scripts/bench", *(argv if argv is not None else sys.argv[1:])]
    cfg = dict(QUICK if args.quick else FULL)
    if args.seconds:
        cfg["seconds"] = args.seconds
    Bench(cfg, args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
