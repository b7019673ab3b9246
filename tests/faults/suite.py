"""The run: set up, waves of orders under faults, settle, check, report."""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from . import history, system
from .client import Recorder, SandboxControl, deliver_storm
from .proxy import ProxyRunner

# One cycle of operator modes: every mode in every ten orders, success the most common.
MIX = ["success"] * 4 + ["fail", "slow", "timeout", "5xx", "unknown", "drop"]
# Long operator calls, so that a worker can be caught in the middle of one.
SLOW_MIX = ["timeout"] * 4 + ["slow"] * 3 + ["success", "drop", "unknown"]
PRODUCTS = [("VOICE", "1000"), ("VOICE", "2000"), ("VOICE", "5000"), ("DATA", "DATA1GB"), ("DATA", "DATA5GB")]
PREFIXES = ("88", "89", "86", "80")
STUCK_SECONDS = 5
GRACE_SECONDS = 2


class TimeLimit(Exception):
    pass


class Stopped(Exception):
    pass


@dataclass
class Spec:
    i: int
    wave: str
    mode: str
    msisdn: str
    rtype: str
    code: str
    customer: int
    number: str = ""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/faults", description=sys.modules[__package__].__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 orders, a subset of faults, no MariaDB restart")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--server", default=os.environ.get("ELIFE_FAULTS_SERVER", "mysql+pymysql://root@127.0.0.1:3306"),
                   help="MariaDB server URL, without a database")
    p.add_argument("--database", default=None, help="database to drop and create (default elife_faults[_quick])")
    p.add_argument("--keep", action="store_true", help="keep the database and the logs even when green")
    p.add_argument("--time-limit", type=int, default=None, help="seconds before the run stops itself")
    a = p.parse_args(argv)
    a.database = a.database or ("elife_faults_quick" if a.quick else "elife_faults")
    if not re.fullmatch(r"[A-Za-z0-9_]*faults[A-Za-z0-9_]*", a.database):
        p.error("--database: letters, digits and _ only, with 'faults' in the name (it is dropped)")
    a.time_limit = a.time_limit or (100 if a.quick else 450)
    return a


def say(line):
    print(f"faults: {line}", flush=True)


class Run:
    def __init__(self, args):
        self.a = args
        self.quick = args.quick
        self.rng = random.Random(args.seed)
        self.started = time.monotonic()
        self.tmp = Path(tempfile.mkdtemp(prefix="elife-faults-"))
        self.lock = threading.Lock()
        self.faults = Counter()
        self.restart_window = None        # (stopped_at, up_at) monotonic
        self.kill_instants = []           # KILL CONNECTION (monotonic)
        self.worker_kills = []            # (monotonic, pid, request id)
        self.sweep_kills = []
        self.killed_pids = set()
        self.sweep_runs = []              # (start, end, rc, line, killed)
        self.sweep_procs = {}
        self.health = []                  # (monotonic, status or None)
        self.waves = []                   # (name, orders, seconds)
        self.specs = []
        self.pipeline_failures = []
        self.callback_replies = Counter()
        self.gunicorn = self.sandbox_proc = self.proxies = None
        self.stop_sweeps = threading.Event()
        self.sweep_threads = []
        self.settle = None

        server = sa.engine.make_url(args.server)
        self.db_name = args.database
        self.db_port = server.port or 3306
        self.direct_url = server.set(database=self.db_name, query={"charset": "utf8mb4"})
        self.server_engine = sa.create_engine(server.set(database=""), poolclass=NullPool)
        self.engine = sa.create_engine(self.direct_url, poolclass=NullPool)

    # -- setup -------------------------------------------------------------------------
    def env(self, via_proxy=True):
        url = self.direct_url
        if via_proxy:
            url = url.set(host="127.0.0.1", port=self.dbp.port)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEP_", "LIMIT_", "UNITEL_", "WECHAT_"))}
        env.update({
            "ELIFE_ENV": "development",
            "FLASK_APP": "wsgi",
            "DATABASE_URL": url.render_as_string(hide_password=False),
            "PORT": str(self.service_port),
            "SANDBOX_PORT": str(self.sandbox_port),
            "SANDBOX_SERVICE_URL": f"http://127.0.0.1:{self.service_port}",
            "SANDBOX_STATE_FILE": str(self.tmp / "sandbox-state.json"),
            "WECHAT_API_BASE": f"http://127.0.0.1:{self.sandbox_port}/wechat",
            "UNITEL_API_URL": f"http://127.0.0.1:{self.opp.port}/unitel",
            "UNITEL_USERNAME": "faults", "UNITEL_PASSWORD": "faults",
            "UNITEL_CONNECT_TIMEOUT": "1", "UNITEL_READ_TIMEOUT": "1", "WECHAT_TIMEOUT": "2",
            "LOG_DIR": str(self.tmp / "logs"), "LOG_LEVEL": "info",
            "SECRET_KEY": "faults-secret", "ADMIN_TOKEN": "faults-admin",
            "DB_MAX_RETRIES": "5", "DB_RETRY_DELAY": "500", "DB_CONNECT_TIMEOUT": "2",
            "SWEEP_STUCK_SECONDS": str(STUCK_SECONDS), "SWEEP_GRACE_SECONDS": str(GRACE_SECONDS),
            "SWEEP_MAX_SECONDS": "60", "SWEEP_BATCH": "100",
            "LIMIT_ORDERS_PER_MINUTE": "1000000", "LIMIT_ORDERS_PER_DAY": "1000000",
            "LIMIT_LOGINS_PER_MINUTE": "1000000", "LIMIT_PAYMENTS_PER_ORDER_HOUR": "1000000",
            "WEB_CONCURRENCY": "4", "GUNICORN_ACCESS_LOG": "", "PYTHONUNBUFFERED": "1",
            # The breaker has its own tests; here it would turn the operator faults into
            # refused orders and hide what this suite looks for (double and lost submits).
            "BREAKER_FAILURES": "1000000",
        })
        return env

    def setup(self):
        if not system.mariadb_ping():
            say("MariaDB is not answering; starting it")
            if not system.mariadb_start():
                raise RuntimeError("MariaDB did not start")
        with self.server_engine.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS `{self.db_name}`"))
            c.execute(sa.text(f"CREATE DATABASE `{self.db_name}` CHARACTER SET utf8mb4"))
        self.service_port, self.sandbox_port = system.free_port(), system.free_port()
        self.proxies = ProxyRunner()
        self.dbp = self.proxies.add("database", self.db_port, self.a.seed + 1)
        self.opp = self.proxies.add("operator", self.sandbox_port, self.a.seed + 2)
        (self.tmp / "logs").mkdir()
        direct = self.env(via_proxy=False)
        for args in (["db", "upgrade"], ["elife", "seed"]):
            rc, out = system.flask(args, direct, self.tmp / "setup.log", timeout=120)
            if rc != 0:
                raise RuntimeError(f"flask {' '.join(args)} failed (see {self.tmp / 'setup.log'})")
        env = self.env()
        self.sandbox_proc = system.spawn([*system.PYTHON, "-m", "elife.sandbox"], env, self.tmp / "sandbox.out")
        system.wait_http(f"http://127.0.0.1:{self.sandbox_port}/_health", 30, self.sandbox_proc)
        self.gunicorn = system.spawn([*system.PYTHON, "-m", "gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"],
                                     env, self.tmp / "gunicorn.out")
        self.base = f"http://127.0.0.1:{self.service_port}"
        system.wait_http(f"{self.base}/health", 60, self.gunicorn)
        self.client = Recorder(self.base)
        self.sandbox = SandboxControl(f"http://127.0.0.1:{self.sandbox_port}")
        self.customers = []
        for i in range(4 if self.quick else 8):
            data = self.client.retrying("login", "POST", "/auth/login", json={"code": f"faults-customer-{i}"})
            self.customers.append({"Authorization": f"Bearer {data['token']}"})
        say(f"service on :{self.service_port} (4 gunicorn workers), sandbox on :{self.sandbox_port}, "
            f"database {self.db_name} through :{self.dbp.port}, operator through :{self.opp.port}, logs in {self.tmp}")

    # -- sweeps ------------------------------------------------------------------------
    def run_sweep(self, slot, timeout=90):
        t0 = time.monotonic()
        with open(self.tmp / f"sweep-{slot}.log", "ab") as err:
            p = subprocess.Popen([*system.PYTHON, "-m", "flask", "elife", "sweep"], cwd=system.REPO,
                                 env=self.env(), stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        with self.lock:
            self.sweep_procs[slot] = p
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        with self.lock:
            self.sweep_procs.pop(slot, None)
        line = (out.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        rec = (t0, time.monotonic(), p.returncode, line, p.pid in self.killed_pids)
        with self.lock:
            self.sweep_runs.append(rec)
        return rec

    def sweep_loop(self, slot):
        while not self.stop_sweeps.is_set():
            self.run_sweep(slot)
            self.stop_sweeps.wait(0.3)

    def start_sweeps(self):
        for slot in ("a", "b"):
            t = threading.Thread(target=self.sweep_loop, args=(slot,), name=f"sweep-{slot}", daemon=True)
            t.start()
            self.sweep_threads.append(t)

    def stop_sweep_loops(self):
        self.stop_sweeps.set()
        for t in self.sweep_threads:
            t.join(100)

    # -- orders ------------------------------------------------------------------------
    def make_specs(self, wave, n, mix):
        cycle = []
        out = []
        for _ in range(n):
            if not cycle:
                cycle = list(mix)
                self.rng.shuffle(cycle)
            i = len(self.specs)
            rtype, code = PRODUCTS[self.rng.randrange(len(PRODUCTS))]
            msisdn = PREFIXES[i % len(PREFIXES)] + f"{100000 + i * 7 + self.a.seed % 7:06d}"
            spec = Spec(i, wave, cycle.pop(), msisdn, rtype, code, i % len(self.customers))
            self.specs.append(spec)
            out.append(spec)
            if spec.mode != "success":
                self.faults[f"operator mode {spec.mode}"] += 1
        return out

    def pipeline(self, spec):
        """A customer orders and pays; WeChat then delivers the notice several times at once."""
        try:
            hdr = self.customers[spec.customer]
            self.sandbox.mode(spec.mode, spec.msisdn)
            order = self.client.retrying("orders", "POST", "/orders", headers={
                **hdr, "Idempotency-Key": f"faults-{self.a.seed}-{spec.i}"}, json={
                "phoneNumber": spec.msisdn, "productOperator": "UNITEL", "rechargeType": spec.rtype,
                "productCode": spec.code})
            spec.number = order["orderNumber"]
            self.client.retrying("payment_create", "POST", "/payment/create", headers=hdr,
                                 json={"orderNumber": spec.number})
            self.sandbox.pay(spec.number)
            notice = self.sandbox.notice(spec.number)
            replies = deliver_storm(self.client, notice, self.copies)
            if spec.mode == "5xx" and spec.i % 2 == 0:
                # this gateway recovers: the sweep's resubmit (after 'not_found') gets through
                time.sleep(0.5)
                self.sandbox.mode("success", spec.msisdn)
                with self.lock:
                    self.faults["operator mode 5xx"] -= 1
                    self.faults["operator mode 5xx, then the gateway recovers"] += 1
            with self.lock:
                self.faults["duplicate callback storm"] += 1
                for status, data in filter(None, replies):
                    key = (f"errcode={data.get('errcode')}" if isinstance(data, dict) and "errcode" in data
                           else f"HTTP {status}")
                    self.callback_replies[key] += 1
        except Exception as exc:  # noqa: BLE001 -- counted; the run then fails
            with self.lock:
                self.pipeline_failures.append((spec.i, spec.number, f"{type(exc).__name__}: {exc}"[:300]))

    def run_wave(self, name, n, mix=MIX, before=None, during=None, after=None):
        specs = self.make_specs(name, n, mix)
        t0 = time.monotonic()
        stop = threading.Event()
        started = [0]
        if before:
            before()
        helper = None
        if during:
            helper = threading.Thread(target=self._guard, args=(during, stop, started, len(specs)),
                                      name=f"during-{name}", daemon=True)
            helper.start()

        def go(spec):
            with self.lock:
                started[0] += 1
            self.pipeline(spec)

        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"w-{name}")
        finished = False
        try:
            list(pool.map(go, specs))
            finished = True
        finally:
            pool.shutdown(wait=finished, cancel_futures=not finished)
            stop.set()
            if helper:
                helper.join(90)
            if after:
                after()
        secs = time.monotonic() - t0
        self.waves.append((name, n, secs))
        say(f"wave {name}: {n} orders in {secs:.1f} s")

    def _guard(self, fn, stop, started, total):
        try:
            fn(stop, started, total)
        except Exception:  # noqa: BLE001 -- a fault that could not be injected fails the run
            with self.lock:
                self.pipeline_failures.append((-1, "", "fault injector: " + traceback.format_exc()[-400:]))

    # -- the faults --------------------------------------------------------------------
    def db_delay_on(self):
        self.dbp.configure(delay=(0.0, 0.012))
        self.opp.configure(delay=(0.0, 0.08))
        self.faults["proxy delay (database, operator)"] += 2

    def proxies_off(self):
        self.dbp.configure()
        self.opp.configure()

    def db_resets_on(self):
        self.dbp.configure(delay=(0.0, 0.003), reset_rate=0.004 if not self.quick else 0.01)

    def db_reset_all(self, stop, started, total):
        while not stop.wait(1.5):
            self.dbp.reset_all()

    def op_delay_on(self):
        """Operator calls that take a moment, so that a process can be caught in one."""
        self.opp.configure(delay=(0.05, 0.15))

    def op_faults_on(self):
        self.opp.configure(delay=(0.0, 0.05), reset_rate=0.08 if not self.quick else 0.2)

    def wechat_query_down(self, stop, started, total):
        if stop.wait(1.0):
            return
        self.sandbox.wechat_down("queryorder")
        self.faults["WeChat order query down"] += 1
        try:
            stop.wait(2.0)
        finally:
            self.sandbox.wechat_down()

    def kill_connections(self, stop, started, total):
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            while not stop.wait(0.4):
                ids = system.mysql_kill_targets(conn, self.db_name, self.dbp.upstream_ports())
                if not ids:
                    continue
                # half of them, at random: some idle in a pool, some in the middle of a query
                victims = self.rng.sample(ids, max(1, len(ids) // 2))
                self.kill_instants.append(time.monotonic())
                for cid in victims:
                    try:
                        conn.execute(sa.text(f"KILL CONNECTION {int(cid)}"))
                        self.faults["KILL CONNECTION"] += 1
                    except sa.exc.DBAPIError:
                        pass  # it ended by itself meanwhile
                self.kill_instants.append(time.monotonic())

    def sigkill_workers(self, stop, started, total):
        """SIGKILL the gunicorn worker whose top-up request is at the operator right now;
        once, a sweep in the middle of a status query."""
        want_workers = 1 if self.quick else 3
        want_sweeps = 0 if self.quick else 1
        last = 0.0
        while not stop.wait(0.02):
            if len(self.worker_kills) >= want_workers and len(self.sweep_kills) >= want_sweeps:
                return
            workers = system.children(self.gunicorn.pid)
            with self.lock:
                sweeps = {p.pid: p for p in self.sweep_procs.values()}
            for port, age, head in self.opp.inflight(min_age=0.03):
                rid = re.search(rb'"journal_id": ?"(ORD\d+)"', head)
                rid = rid.group(1).decode() if rid else "?"
                if head.startswith((b"POST /unitel/service/recharge", b"POST /unitel/service/datapackage")) \
                        and age >= 0.15 and len(self.worker_kills) < want_workers \
                        and time.monotonic() - last > 1.0:
                    pid = system.socket_owner(port, self.opp.port, workers)
                    if pid:
                        t = time.monotonic()
                        os.kill(pid, signal.SIGKILL)
                        self.worker_kills.append((t, pid, rid))
                        self.faults["gunicorn worker SIGKILL mid operator call"] += 1
                        last = t
                        break
                if head.startswith(b"POST /unitel/service/status") and len(self.sweep_kills) < want_sweeps:
                    pid = system.socket_owner(port, self.opp.port, list(sweeps))
                    if pid:
                        self.killed_pids.add(pid)
                        os.kill(pid, signal.SIGKILL)
                        self.sweep_kills.append((time.monotonic(), pid, rid))
                        self.faults["sweep SIGKILL mid status query"] += 1
                        break

    def mariadb_restart(self, stop, started, total):
        poller_stop = threading.Event()
        poller = threading.Thread(target=self._poll_health, args=(poller_stop,), daemon=True)
        poller.start()
        try:
            deadline = time.monotonic() + 20
            while started[0] < total // 3 and time.monotonic() < deadline and not stop.is_set():
                time.sleep(0.05)
            time.sleep(0.5)
            restart = system.MariaDBRestart(os.environ.get("ELIFE_FAULTS_DB_MARKER"))
            try:
                restart.run()
            finally:
                if restart.stopped_at is not None:
                    self.restart_window = (restart.stopped_at, restart.up_at or time.monotonic())
                    self.restart = restart
            self.faults["MariaDB restart"] += 1
            # /health must come back by itself: wait for it (bounded), no restart of gunicorn
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                recent = [s for t, s in self.health if t > restart.up_at]
                if recent[-5:] == [200] * 5:
                    break
                time.sleep(0.1)
        finally:
            poller_stop.set()
            poller.join(10)

    def _poll_health(self, stop):
        import requests
        while not stop.is_set():
            t = time.monotonic()
            try:
                status = requests.get(f"{self.base}/health", timeout=2, headers={"Connection": "close"}).status_code
            except requests.RequestException:
                status = None
            self.health.append((t, status))
            stop.wait(0.1)

    # -- the run -----------------------------------------------------------------------
    def waves_full(self):
        self.run_wave("callback storm", 80)
        self.run_wave("database proxy delay", 40, before=self.db_delay_on, after=self.proxies_off)
        self.run_wave("database proxy resets", 40, before=self.db_resets_on, during=self.db_reset_all,
                      after=self.proxies_off)
        self.run_wave("operator proxy delay+resets, WeChat query down", 40, before=self.op_faults_on,
                      during=self.wechat_query_down, after=self.proxies_off)
        self.run_wave("KILL CONNECTION", 40, during=self.kill_connections)
        self.run_wave("SIGKILL mid operator call", 30, mix=SLOW_MIX, before=self.op_delay_on,
                      during=self.sigkill_workers, after=self.proxies_off)
        self.run_wave("MariaDB restart", 40, during=self.mariadb_restart)

    def waves_quick(self):
        self.run_wave("callback storm", 4)
        self.run_wave("database proxy delay+resets", 4,
                      before=lambda: (self.db_delay_on(), self.db_resets_on()), during=self.db_reset_all,
                      after=self.proxies_off)
        self.run_wave("operator proxy delay+resets", 4, before=self.op_faults_on, after=self.proxies_off)
        self.run_wave("KILL CONNECTION", 4, during=self.kill_connections)
        self.run_wave("SIGKILL mid operator call", 4, mix=SLOW_MIX, during=self.sigkill_workers)

    def settle_all(self):
        """Every fault off, the operator healthy; sweeps until nothing is left to settle."""
        t0 = time.monotonic()
        self.stop_sweep_loops()
        self.proxies_off()
        self.sandbox.wechat_down()
        self.sandbox.mode("success")
        for msisdn in sorted({s.msisdn for s in self.specs if s.mode != "success"}):
            self.sandbox.mode("success", msisdn)
        time.sleep(STUCK_SECONDS + 1)
        rounds = 0
        left = None
        for rounds in range(1, 9):
            _, _, rc, line, _ = self.run_sweep("settle")
            with self.engine.connect() as c:
                left = history.unsettled(c, self.sandbox)
            if rounds >= 2 and left == 0 and rc == 0:
                break
            time.sleep(1.5)
        self.settle = (rounds, left, time.monotonic() - t0)
        say(f"settled: {rounds} sweeps in {time.monotonic() - t0:.1f} s, {left} paid orders still open")

    def execute(self):
        self.concurrency = 6 if self.quick else 12
        self.copies = 3 if self.quick else 4
        self.setup()
        self.start_sweeps()
        (self.waves_quick if self.quick else self.waves_full)()
        self.settle_all()
        with self.engine.connect() as c:
            return history.check(c, self.sandbox, STUCK_SECONDS, [s.number for s in self.specs if s.number])

    # -- the report --------------------------------------------------------------------
    def _db_fault_during(self, start, end):
        """'restart' when the request overlapped the MariaDB outage, 'connection' when one
        of our resets or a KILL CONNECTION happened while it ran, else None."""
        if self.restart_window:
            a, b = self.restart_window
            if start <= b + 0.5 and end >= a:
                return "restart"
        instants = list(self.dbp.resets) + self.kill_instants
        if any(start - 0.05 <= x <= end + 0.05 for x in instants):
            return "connection"
        return None

    def report(self, f):
        ok = True
        self.faults["database proxy connection resets"] = len(self.dbp.resets)
        self.faults["operator proxy connection resets"] = len(self.opp.resets)
        injected = sum(self.faults.values())
        say("injected: " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items(), key=lambda kv: -kv[1])))
        say(f"  ({self.copies} deliveries of each notice at once; {self.dbp.refused} connections refused by the "
            f"database proxy while MariaDB was down)")

        # HTTP answers the clients got from the service
        allowed503, bad5xx, killed_mid, no_answer = Counter(), [], 0, []
        calls = [c for c in self.client.calls if c.kind != "health"]
        for c in calls:
            if c.status is None:
                if any(c.started - 0.05 <= t <= c.ended + 0.05 for t, _, _ in self.worker_kills):
                    killed_mid += 1
                else:
                    no_answer.append(c)
            elif c.status >= 500:
                why = self._db_fault_during(c.started, c.ended)
                if c.status == 503 and c.code == "database_unavailable" and why:
                    allowed503[why] += 1
                else:
                    bad5xx.append(c)
        n5xx = sum(1 for c in calls if c.status and c.status >= 500)
        n500 = sum(1 for c in calls if c.status == 500)
        say(f"HTTP: {len(calls)} requests to the service; 5xx: {n5xx} (503 database_unavailable while MariaDB was "
            f"down: {allowed503['restart']}, while a connection of the request was reset or killed: "
            f"{allowed503['connection']}; 500: {n500}; other: {n5xx - sum(allowed503.values()) - n500}); "
            f"no answer: {killed_mid + len(no_answer)} (its worker SIGKILLed mid-request: {killed_mid}, "
            f"otherwise: {len(no_answer)})")
        for c in (bad5xx + no_answer)[:10]:
            say(f"  unexpected: {c.kind} -> {c.status} {c.code} {' '.join(c.error.split())[:200]}".rstrip())
        if bad5xx or no_answer:
            ok = False
        say("callback replies: " + ", ".join(f"{k} {v}" for k, v in sorted(self.callback_replies.items())))

        if self.restart_window:
            r = self.restart
            down = [t for t, s in self.health if s != 200]
            health_down = 0.0
            if down:
                back = [t for t, s in self.health if s == 200 and t > down[0]]
                health_down = (back[0] if back else self.health[-1][0]) - down[0]
            say(f"MariaDB restart: down {r.up_at - r.stopped_at:.1f} s (shutdown {r.gone_at - r.stopped_at:.1f} s, "
                f"start {r.up_at - r.started_at:.1f} s); /health not 200 for {health_down:.1f} s "
                f"({sum(1 for _, s in self.health if s != 200)} of {len(self.health)} probes), back to 200 "
                f"without a gunicorn restart")
        if self.worker_kills or self.sweep_kills:
            say("SIGKILL: " + ", ".join([f"worker {pid} during submit {rid}" for _, pid, rid in self.worker_kills] +
                                        [f"sweep {pid} during status {rid}" for _, pid, rid in self.sweep_kills]))

        failed = [r for r in self.sweep_runs if r[2] != 0]
        explained = [r for r in failed if r[4] or self._db_fault_during(r[0], r[1])]
        row_errors = sum(int(m.group(1)) for r in self.sweep_runs if (m := re.search(r"errors=(\d+)", r[3])))
        say(f"sweeps: {len(self.sweep_runs)} runs (two at once during the waves), exit non-zero: {len(failed)} "
            f"(killed or during a database fault: {len(explained)}); rows that failed in a sweep: {row_errors}")
        if len(failed) != len(explained):
            ok = False
            for r in failed:
                if r not in explained:
                    say(f"  sweep failed outside any fault: rc={r[2]} {r[3][:200]}")

        if self.pipeline_failures:
            ok = False
            say(f"orders that could not be placed and paid: {len(self.pipeline_failures)}")
            for i, n, why in self.pipeline_failures[:5]:
                say(f"  #{i} {n}: {why}")
        rounds, left, secs = self.settle
        if left:
            say(f"still open after settling: {left}")

        errors = Counter()
        try:
            for line in (self.tmp / "logs" / "error.log").read_text(errors="replace").splitlines():
                m = re.search(r" ERROR \S+ event=(\S+)", line)
                if m:
                    errors[m.group(1)] += 1
        except OSError:
            pass
        say("error.log events: " + (", ".join(f"{k} {v}" for k, v in errors.most_common()) or "none"))
        say("orders by state: " + ", ".join(f"{p}/{r} {n}" for (p, r), n in sorted(f.states.items())))
        say("flagged: " + (", ".join(f"{k} {v}" for k, v in sorted(f.flagged.items())) or "none"))
        say(f"operator: {f.submits} submits reached it; request ids it saw twice, each after its status "
            f"query said 'not_found': {f.resubmits_allowed}; resubmits in the audit table: "
            + (", ".join(f"{k} {v}" for k, v in sorted(f.resubmits.items())) or "none"))
        for n, why in f.submitted_twice[:10]:
            say(f"  SUBMITTED TWICE {n}: {why}")
        for n, why in f.lost[:10]:
            say(f"  LOST {n}: {why}")
        say(f"inconsistent (WeChat, operator and our database disagree): {len(f.inconsistent)}")
        for n, why in f.inconsistent[:10]:
            say(f"  {n}: {why}")
        if f.inconsistent:
            ok = False
        say(f"wall time {time.monotonic() - self.started:.0f} s")
        print(f"faults: {injected} injected, orders: {f.orders}, submitted twice: {len(f.submitted_twice)}, "
              f"lost: {len(f.lost)}", flush=True)
        return ok and not f.submitted_twice and not f.lost

    # -- the end -----------------------------------------------------------------------
    def cleanup(self, green):
        self.stop_sweeps.set()
        if getattr(self, "client", None) is not None:
            self.client.aborted.set()
        with self.lock:
            procs = list(self.sweep_procs.values())
        for p in procs:
            if p.poll() is None:
                p.kill()
        system.stop(self.gunicorn, grace=15)
        system.stop(self.sandbox_proc)
        if self.proxies:
            self.proxies.close()
        marker = os.environ.get("ELIFE_FAULTS_DB_MARKER")
        if (marker and os.path.exists(marker)) or not system.mariadb_ping():
            say("starting MariaDB again")
            system.mariadb_start()
            if marker and os.path.exists(marker):
                os.unlink(marker)
        if green and not self.a.keep:
            try:
                with self.server_engine.connect() as c:
                    c.execute(sa.text(f"DROP DATABASE IF EXISTS `{self.db_name}`"))
            except Exception:  # noqa: BLE001 -- best effort
                pass
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            say(f"kept for a look: database {self.db_name}, logs {self.tmp}")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def on_alarm(*_):
        raise TimeLimit(f"the run did not finish within {args.time_limit} s")

    def on_term(signum, _):
        raise Stopped(f"stopped by signal {signum}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(args.time_limit)
    run = Run(args)
    green = False
    try:
        findings = run.execute()
        signal.alarm(0)
        green = run.report(findings)
    except (TimeLimit, Stopped, KeyboardInterrupt) as exc:
        say(f"run could not complete: {exc or type(exc).__name__}")
    except Exception:  # noqa: BLE001 -- any failure to run is a failed run, said plainly
        say("run could not complete:\n" + traceback.format_exc())
    finally:
        signal.alarm(0)
        try:
            run.cleanup(green)
        except (TimeLimit, Stopped, KeyboardInterrupt):
            run.cleanup(green)
    return 0 if green else 1
